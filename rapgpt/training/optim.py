"""AdamW over the trainable parameters, and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from rapgpt.errors import ConfigError
from rapgpt.training.config import TrainConfig

# Position embeddings are a table of vectors like the biases, not a map between spaces: they are not decayed.
NO_DECAY_SUFFIXES = ("wpe.weight",)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two AdamW groups: weight matrices decay; biases, norms and positions do not.

    Only parameters with `requires_grad` are included, so a model with frozen weights (LoRA) trains its adapters
    alone. Tied parameters appear once.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and not name.endswith(NO_DECAY_SUFFIXES) else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where PyTorch has one for the device, else the multi-tensor one."""
    groups = param_groups(model, config.weight_decay)
    if not any(g["params"] for g in groups):
        raise ConfigError("the model has no trainable parameters: nothing to train")
    fused = device.type in ("cpu", "cuda", "mps")
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused, foreach=None if fused else True
    )


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over `warmup_steps`, times a cosine from `lr` down to its floor as `progress` goes 0 -> 1.

    `progress` is the fraction of the schedule done, by steps, tokens or wall clock, whichever budget binds:
    the decay reaches its floor when the run ends, however its length is measured.
    """
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    floor = config.lr * config.min_lr_ratio
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warmup * (floor + (config.lr - floor) * cosine)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
