"""The optimizer over the trainable parameters (AdamW, or Muon for the hidden matrices), and the learning-rate
schedule.

Muon (`--optimizer muon`) orthogonalizes the momentum of each weight matrix inside the transformer blocks before
applying it (Newton-Schulz iterations), which gained loss per step over AdamW in the GPU speedruns of small GPT
models; the embeddings, the tied head, biases and norms stay with AdamW, as Muon suits only hidden matrices. It
changes how the weights are found, not the model: a run trained with Muon is the same GPT-2 and exports like any
other.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rapgpt.errors import ConfigError
from rapgpt.training.config import TrainConfig

# Position embeddings are a table of vectors like the biases, not a map between spaces: they are not decayed.
NO_DECAY_SUFFIXES = ("wpe.weight",)
# The token embedding (and the output head tied to it), which `--embedding-lr` steps at its own rate.
TOKEN_EMBEDDING = "transformer.wte."


def param_groups(model: nn.Module, weight_decay: float, embedding_lr_scale: float = 1.0) -> list[dict]:
    """Trainable parameters in AdamW groups: weight matrices decay; biases, norms and positions do not. With an
    `embedding_lr_scale` other than 1, the token embedding's parameters (its adapter's, under LoRA) form a third
    group whose learning rate is the schedule's times that scale (see `set_lr`).

    Only parameters with `requires_grad` are included, so a model with frozen weights (LoRA) trains its adapters
    alone. Tied parameters appear once.
    """
    decay, no_decay, embedding = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if embedding_lr_scale != 1.0 and name.startswith(TOKEN_EMBEDDING):
            embedding.append(p)
            continue
        (decay if p.dim() >= 2 and not name.endswith(NO_DECAY_SUFFIXES) else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if embedding:
        groups.append({"params": embedding, "weight_decay": weight_decay, "lr_scale": embedding_lr_scale})
    return groups


def is_hidden_matrix(name: str, p: nn.Parameter) -> bool:
    """A weight matrix inside a transformer block (attention and MLP projections): what Muon optimizes."""
    return p.dim() == 2 and name.startswith("transformer.h.") and name.endswith(".weight")


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer | MuonAdamW:
    """AdamW with the fused kernel where PyTorch has one for the device, else the multi-tensor one; with
    `config.optimizer == "muon"`, Muon for the hidden matrices beside it."""
    hidden = {id(p) for name, p in model.named_parameters() if config.optimizer == "muon" and is_hidden_matrix(name, p)}
    embedding_lr_scale = 1.0 if config.embedding_lr is None else config.embedding_lr / config.lr
    groups = param_groups(model, config.weight_decay, embedding_lr_scale)
    matrices = [p for g in groups for p in g["params"] if id(p) in hidden]
    for g in groups:
        g["params"] = [p for p in g["params"] if id(p) not in hidden]
    if not any(g["params"] for g in groups) and not matrices:
        raise ConfigError("the model has no trainable parameters: nothing to train")
    fused = device.type in ("cpu", "cuda", "mps")
    adamw = torch.optim.AdamW(
        groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused, foreach=None if fused else True
    )
    if not matrices:
        return adamw
    # The same decoupled weight decay per step as AdamW's (Muon multiplies it by its own, larger, step size).
    muon = torch.optim.Muon([{"params": matrices, "lr_scale": config.muon_lr / config.lr}], lr=config.muon_lr,
                            weight_decay=config.weight_decay * config.lr / config.muon_lr, adjust_lr_fn="original")
    return MuonAdamW(muon, adamw)


class MuonAdamW:
    """Muon and AdamW stepped as one optimizer: the training loop, the gradient scaler and the saved state see
    one object with the param groups of both."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    @property
    def state(self) -> dict:
        return {**self.muon.state, **self.adamw.state}

    def step(self, closure: None = None) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over `warmup_steps`, times a cosine from `lr` down to its floor as `progress` goes 0 -> 1.

    `progress` is the fraction of the schedule done, by steps, tokens or wall clock, whichever budget binds:
    the decay reaches its floor when the run ends, however its length is measured.
    """
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    floor = config.lr * config.min_lr_ratio
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warmup * (floor + (config.lr - floor) * cosine)


def set_lr(optimizer: torch.optim.Optimizer | MuonAdamW, lr: float) -> None:
    """The schedule's learning rate on every group; Muon's and the embedding's groups keep their ratio to it
    (`--muon-lr`, `--embedding-lr`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
