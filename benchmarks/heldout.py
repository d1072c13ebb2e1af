"""The one yardstick of the training benchmarks: mean validation loss on fixed windows, computed the same way for
every contender (fp32, each model's own `model(x, y)` loss), so that figures from different runs compare."""

from __future__ import annotations

import numpy as np
import torch

from rapgpt.training.batches import eval_windows

BATCH = 16


def fixed_windows(tokens: np.ndarray, block_size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` windows of a split, the same ones in every run (seed 0)."""
    return eval_windows(tokens, block_size, count, seed=0, split="val")


@torch.no_grad()
def mean_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats per token over the windows."""
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(inputs), BATCH):
        _, loss = model(inputs[i : i + BATCH], targets[i : i + BATCH])
        total += loss.item() * len(inputs[i : i + BATCH])
    model.train(was_training)
    return total / len(inputs)
