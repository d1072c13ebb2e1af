"""Loss and next-token accuracy on fixed windows, and the overfitting watch over successive evaluations."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rapgpt.evaluate.intrinsic import window_scores
from rapgpt.training.runtime import Runtime


@torch.no_grad()
def evaluate_splits(model: nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int,
                    runtime: Runtime) -> dict[str, float]:
    """Mean loss and accuracy per split ({split}_loss, {split}_acc), summed over every process's share."""
    was_training = model.training
    model.eval()
    results = {}
    for split, (inputs, targets) in splits.items():
        totals = torch.zeros(3, dtype=torch.float64, device=runtime.device)  # loss sum, correct, tokens
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i : i + batch_size].to(runtime.device), targets[i : i + batch_size].to(runtime.device)
            with runtime.autocast():
                totals += window_scores(model, x, y)
        loss_sum, correct, count = runtime.all_reduce(totals).tolist()
        results[f"{split}_loss"] = loss_sum / count
        results[f"{split}_acc"] = correct / count
    model.train(was_training)
    return results


@dataclass
class OverfitMonitor:
    """Tracks the best validation loss, and flags overfitting: val loss rising for `patience` evaluations in a
    row while train loss falls."""

    patience: int
    history: list[tuple[float, float]] = field(default_factory=list)  # (train loss, val loss) per evaluation
    best_val: float = math.inf

    def update(self, train_loss: float, val_loss: float) -> tuple[bool, bool]:
        """Record an evaluation; return (a new best val loss, overfitting)."""
        self.history.append((train_loss, val_loss))
        is_best = val_loss < self.best_val
        self.best_val = min(self.best_val, val_loss)
        recent = self.history[-(self.patience + 1) :]
        rising = all(b[1] > a[1] and b[0] < a[0] for a, b in itertools.pairwise(recent))
        return is_best, len(recent) == self.patience + 1 and rising

    def state_dict(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.history], "best_val": self.best_val}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [tuple(h) for h in state["history"]]
        self.best_val = state["best_val"]
