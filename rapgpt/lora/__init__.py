"""LoRA: adapt a pretrained GPT to one artist by training a small low-rank update beside each frozen weight.

A targeted layer with frozen weight W (out x in) computes W x + scaling * B A x (Hu et al. 2021), where only
A (r x in) and B (out x r) are trained and scaling = alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski
2023, the default), which keeps the update's magnitude stable as the rank grows. One of A and B starts at zero, so
the adapted model starts exactly equal to the base. Tensor names and layouts follow PEFT, so adapters map onto
`peft` one to one:
    Linear      lora_A (r, in) kaiming-uniform, lora_B (out, r) zero;       dropout on the LoRA path's input.
    Embedding   lora_A (r, vocab) zero,         lora_B (dim, r) normal(0, 1); the update of the embedding matrix
                is (B A)^T, and there is no dropout (the input is token ids).
The output head is tied to the token embedding. When `transformer.wte` is adapted, the head computes its logits
against the adapted matrix (wte + update) as well, so input and output stay tied, which is exactly what merging the
update into the shared weight produces: unmerged and merged models give the same logits.

An adapter directory holds adapter.safetensors (the LoRA tensors) and adapter_config.json (the `LoRAConfig`, the
adapted layers, and a fingerprint of the base weights that refuses loading onto any other base).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from rapgpt.checkpoint import TIED_KEY, load_run, save_run
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import CheckpointError, ConfigError, RapgptError
from rapgpt.fileio import atomic_write, atomic_write_json, read_json
from rapgpt.model import GPT
from rapgpt.training.config import DEFAULT_LORA_TARGETS, LoRAConfig, lora_scaling

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FORMAT = "rapgpt-lora/1"
# The attention and MLP projections of every block; add "wte" to adapt the token embedding (and the tied head).
DEFAULT_TARGETS = DEFAULT_LORA_TARGETS


class LoRALayer(nn.Module):
    """What LoRALinear and LoRAEmbedding share: a frozen `base` layer and the merging of their update into it."""

    def __init__(self, base: nn.Linear | nn.Embedding, rank: int, alpha: float, rslora: bool):
        super().__init__()
        self.base = base
        self.scaling = lora_scaling(alpha, rank, rslora)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update of the base weight, in the base weight's shape."""
        raise NotImplementedError

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight in place; forward then costs what the base layer costs."""
        if not self.merged:
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the base weight again (exact up to float rounding)."""
        if self.merged:
            self.base.weight.sub_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = False


class LoRALinear(LoRALayer):
    """A frozen nn.Linear plus the trained update: base(x) + scaling * B A dropout(x)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rslora: bool = True, dropout: float = 0.0):
        super().__init__(base, rank, alpha, rslora)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its own weight
        self.dropout = nn.Dropout(dropout)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        device = x.device.type
        if torch.is_autocast_enabled(device):  # cast once for both paths (autocast would cast x for each matmul)
            x = x.to(torch.get_autocast_dtype(device))
        y = self.base(x)
        # The scaling goes on the rank-r intermediate (r multiplies per token instead of `out`); `@ lora_B.T` makes
        # B's gradient the fast (r, T) @ (T, out) product; the sum is made in place, as the base matmul's backward
        # does not need its output.
        return y.add_((F.linear(self.dropout(x), self.lora_A) * self.scaling) @ self.lora_B.T)


class LoRAEmbedding(LoRALayer):
    """A frozen nn.Embedding plus the trained update (B A)^T * scaling of its (vocab, dim) matrix.

    Also serves as the tied output head through `logits`, which uses the same adapted matrix.
    """

    def __init__(self, base: nn.Embedding, rank: int, alpha: float, rslora: bool = True):
        super().__init__(base, rank, alpha, rslora)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.zeros(rank, base.num_embeddings, **like))
        self.lora_B = nn.Parameter(torch.empty(base.embedding_dim, rank, **like))
        nn.init.normal_(self.lora_B)  # the roles of A and B swapped with respect to Linear, as PEFT and loralib do

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A).T * self.scaling  # (vocab, dim)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        y = self.base(idx)
        if self.merged:
            return y
        return y.add_((F.embedding(idx, self.lora_A.T) * self.scaling) @ self.lora_B.T)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) against the adapted matrix: x W^T + scaling * (x B) A, without forming W + update."""
        y = F.linear(x, self.base.weight)
        if self.merged:
            return y
        return y.add_((x @ self.lora_B * self.scaling) @ self.lora_A)


class TiedLoRAHead(nn.Module):
    """The output head tied to an adapted token embedding: logits against wte + its update, as merging gives."""

    def __init__(self, embedding: LoRAEmbedding):
        super().__init__()
        self.__dict__["embedding"] = embedding  # not a submodule: its tensors are counted and saved once, in wte

    @property
    def weight(self) -> torch.Tensor:
        """The shared base matrix (what the plain head's `weight` is), for code that reads its dtype and device."""
        return self.embedding.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding.logits(x)


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
                model.lm_head = TiedLoRAHead(wrapped)
        else:
            wrapped = LoRALinear(layer, config.rank, config.alpha, config.rslora, config.dropout)
        _set_module(model, name, wrapped.train(model.training))  # new modules start in training mode
    return model


def _unwrap(model: GPT) -> GPT:
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
    return _unwrap(model)


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


def base_state(model: GPT) -> dict[str, torch.Tensor]:
    """The base model's weights under the plain GPT's names, whether or not LoRA layers wrap some of them."""
    wrappers = lora_layers(model)
    if any(layer.merged for layer in wrappers.values()):
        raise ConfigError("LoRA layers are merged into the base weights: unmerge them to read the base")
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("lora_A", "lora_B") or key == TIED_KEY:
            continue
        owner, _, attr = prefix.rpartition(".")
        state[f"{owner}.{leaf}" if attr == "base" and owner in wrappers else key] = tensor
    return state


def base_fingerprint(model: GPT) -> str:
    """sha256 over the base weights' names, dtypes, shapes and bytes, in name order: equal only for equal bases."""
    h = hashlib.sha256()
    for name, tensor in sorted(base_state(model).items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_adapter(out_dir: str | Path, model: GPT, config: LoRAConfig, base_run: str | Path | None = None) -> Path:
    """Write adapter.safetensors, then adapter_config.json (last, so a complete config means a complete adapter)."""
    out_dir = Path(out_dir)
    state = {k: v.contiguous() for k, v in lora_state(model).items()}
    if not state:
        raise ConfigError("the model has no LoRA layers to save: call apply_lora first")
    spec = {
        "format": ADAPTER_FORMAT,
        "lora": config.to_dict(),
        "layers": sorted(lora_layers(model)),
        "base_fingerprint": base_fingerprint(model),
        # Where to find the base by default; the fingerprint decides whether a base fits.
        "base_run": str(Path(base_run).resolve()) if base_run is not None else None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / ADAPTER_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_json(out_dir / ADAPTER_CONFIG, spec)
    return out_dir


def read_adapter_config(adapter_dir: str | Path) -> tuple[LoRAConfig, dict[str, Any]]:
    """The adapter's `LoRAConfig` and its whole adapter_config.json, checked."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise CheckpointError(f"adapter directory not found: {adapter_dir} (create one with `rapgpt finetune`)")
    spec = read_json(adapter_dir / ADAPTER_CONFIG, "adapter config", CheckpointError)
    if not isinstance(spec, dict) or spec.get("format") != ADAPTER_FORMAT:
        raise CheckpointError(f"{adapter_dir / ADAPTER_CONFIG} is not a rapgpt LoRA adapter config "
                              f"(expected format {ADAPTER_FORMAT!r})")
    try:
        return LoRAConfig.from_dict(spec["lora"]), spec
    except (RapgptError, TypeError, KeyError) as e:
        raise CheckpointError(f"{adapter_dir / ADAPTER_CONFIG} is not a valid adapter config: {e}") from e


def load_adapter(model: GPT, adapter_dir: str | Path) -> GPT:
    """Adapt the plain base `model` in place with the saved adapter, refusing a base it was not trained on."""
    adapter_dir = Path(adapter_dir)
    config, spec = read_adapter_config(adapter_dir)
    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"adapter weights not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated") from e
    if lora_layers(model):
        raise ConfigError("the model already has LoRA layers: load an adapter onto the plain base model")
    if base_fingerprint(model) != spec.get("base_fingerprint"):
        hint = f" (it was trained on {spec['base_run']})" if spec.get("base_run") else ""
        raise CheckpointError(f"adapter {adapter_dir} was trained on a different base model{hint}: its base "
                              "fingerprint does not match these weights; load it onto the base it was trained from")
    apply_lora(model, config)
    try:
        load_lora_state(model, state, str(path))
    except CheckpointError:
        _unwrap(model)  # leave the caller's model as it was given
        raise
    return model


def recorded_base_run(adapter_dir: str | Path) -> str:
    """The base run directory the adapter was saved with."""
    base_run = read_adapter_config(adapter_dir)[1].get("base_run")
    if not base_run:
        raise CheckpointError(f"adapter {adapter_dir} does not record its base run: name the base run directory")
    return base_run


def load_adapted_run(
    base_run: str | Path | None, adapter_dir: str | Path, merge: bool = False, device: str | torch.device = "cpu"
) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """The base run's model with the adapter loaded (merged into a plain GPT if `merge`), in eval mode, its
    tokenizer, and the base run's config with the adapter's config under "adapter".

    Without `base_run`, the base run recorded in the adapter is used (the fingerprint still has the last word).
    """
    model, tokenizer, config = load_run(base_run if base_run is not None else recorded_base_run(adapter_dir))
    load_adapter(model, adapter_dir)
    if merge:
        merge_lora(model)
    return model.to(device).eval(), tokenizer, {**config, "adapter": read_adapter_config(adapter_dir)[1]}


def merge_run(
    base_run: str | Path | None, adapter_dir: str | Path, out_dir: str | Path, force: bool = False
) -> Path:
    """Merge an adapter into its base (by default the base run the adapter records) and save the result as a
    standalone run directory."""
    out_dir = Path(out_dir)
    base_run = base_run if base_run is not None else recorded_base_run(adapter_dir)
    for name, other in (("base", base_run), ("adapter", adapter_dir)):
        if out_dir.resolve() == Path(other).resolve():
            raise ConfigError(f"--out {out_dir} is the {name} directory: choose a new directory for the merged run")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"output directory already exists and is not empty: {out_dir} (pass --force to replace)")
    model, tokenizer, config = load_adapted_run(base_run, adapter_dir, merge=True)
    merged_from = {"base_run": str(base_run), "adapter": str(adapter_dir), "adapter_config": config["adapter"]}
    return save_run(out_dir, model, tokenizer, merged_from=merged_from)
