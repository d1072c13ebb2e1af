"""Model surgery: wrap the targeted layers of a GPT in LoRA layers, take them out again, merge them, and read or
write their tensors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch
from torch import nn

from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.lora.layers import LoRAEmbedding, LoRALayer, LoRALinear, TiedLoRAHead
from rapgpt.model import GPT
from rapgpt.training.config import LoRAConfig


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALayer)}


def _matches(name: str, pattern: str) -> bool:
    """A pattern names a module by its full name or by a dotted suffix of it; shell wildcards are allowed."""
    return fnmatchcase(name, pattern) or fnmatchcase(name, "*." + pattern)


def select_targets(model: GPT, patterns: tuple[str, ...] | list[str]) -> list[str]:
    """The names of the layers the patterns select, refusing any pattern that selects nothing or a layer LoRA must
    not adapt (norms, the tied head, containers)."""
    modules = dict(model.named_modules())
    selected: list[str] = []
    for pattern in patterns:
        hits = [name for name in modules if name and _matches(name, pattern)]
        if not hits:
            adaptable = sorted({re.sub(r"^transformer\.(h\.\d+\.)?", "", n) for n, m in modules.items()
                                if isinstance(m, (nn.Linear, nn.Embedding)) and m is not model.lm_head})
            raise ConfigError(f"LoRA target {pattern!r} matches no layer; adaptable layers: {', '.join(adaptable)}")
        for name in hits:
            module = modules[name]
            if isinstance(module, nn.LayerNorm):
                raise ConfigError(f"LoRA target {pattern!r} selects the norm {name}: norms are never adapted, "
                                  "name the projections instead (e.g. attn.c_attn, mlp.c_fc)")
            if module is model.lm_head:
                raise ConfigError(f"LoRA target {pattern!r} selects lm_head, which is tied to transformer.wte: "
                                  "target 'wte' to adapt both")
            if not isinstance(module, (nn.Linear, nn.Embedding)):
                raise ConfigError(f"LoRA target {pattern!r} selects {name}, a {type(module).__name__}: LoRA adapts "
                                  "Linear and Embedding layers only (e.g. attn.c_attn, mlp.c_proj, wte)")
            if name not in selected:
                selected.append(name)
    return selected


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, module)


def apply_lora(model: GPT, config: LoRAConfig) -> GPT:
    """Wrap the targeted layers of `model` in place with LoRA layers and freeze every other parameter."""
    if lora_layers(model):
        raise ConfigError("the model already has LoRA layers: apply LoRA to a plain base model")
    names = select_targets(model, config.targets)
    model.requires_grad_(False)
    for name in names:
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Embedding):
            wrapped = LoRAEmbedding(layer, config.rank, config.alpha, config.rslora)
            if layer.weight is model.lm_head.weight:
                model.lm_head = TiedLoRAHead(wrapped).train(model.training)
        else:
            wrapped = LoRALinear(layer, config.rank, config.alpha, config.rslora, config.dropout)
        _set_module(model, name, wrapped.train(model.training))  # new modules start in training mode
    return model


def unwrap(model: GPT) -> GPT:
    """Put the base layers back in place of their LoRA wrappers (merged or not), restore the tied head, unfreeze."""
    for name, layer in lora_layers(model).items():
        _set_module(model, name, layer.base)
    if isinstance(model.lm_head, TiedLoRAHead):
        wte = model.transformer.wte
        head = nn.Linear(wte.embedding_dim, wte.num_embeddings, bias=False, device="meta")  # no allocation
        head.weight = wte.weight  # weight tying, as GPT builds it
        model.lm_head = head
    return model.requires_grad_(True)


def merge_lora(model: GPT) -> GPT:
    """Fold every LoRA update into its base weight and return the plain `GPT` (the same object, changed in place)."""
    for layer in lora_layers(model).values():
        layer.merge()
    return unwrap(model)


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors by name (e.g. `transformer.h.0.attn.c_attn.lora_A`): everything an adapter trains."""
    return {f"{name}.{p}": getattr(layer, p).detach() for name, layer in lora_layers(model).items()
            for p in ("lora_A", "lora_B")}


@torch.no_grad()
def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state") -> None:
    """Copy LoRA tensors into an adapted model, refusing any that do not fit it exactly."""
    expected = lora_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match the adapted model: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{source}: {name} has shape {tuple(tensor.shape)}, the adapted model expects "
                                  f"{tuple(expected[name].shape)}")
    for name, tensor in state.items():  # only once every tensor fits, so that a refusal changes nothing
        expected[name].copy_(tensor)


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total

    def __str__(self) -> str:
        return f"trainable parameters: {self.trainable:,} of {self.total:,} ({100 * self.share:.2f}%)"


def trainable_parameters_report(model: nn.Module) -> ParameterCount:
    """How many parameters train, against all of them (LoRA's included, tied ones counted once)."""
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))
