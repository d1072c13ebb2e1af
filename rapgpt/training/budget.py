"""How far a run has come, and how much of its budget and of its learning-rate schedule that is."""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.training.config import TrainConfig


@dataclass
class Progress:
    step: int = 0  # optimizer steps taken
    tokens: int = 0  # training tokens consumed, over all processes
    seconds: float = 0.0  # wall clock spent training, over all sessions of the run

    def epochs(self, train_tokens: int) -> float:
        return self.tokens / train_tokens


def budget_used(config: TrainConfig, progress: Progress, train_tokens: int) -> float:
    """The fraction of the budget used: the largest over the budgets set (one epoch when none is)."""
    fractions = []
    if config.max_steps is not None:
        fractions.append(progress.step / config.max_steps)
    if config.max_tokens is not None:
        fractions.append(progress.tokens / config.max_tokens)
    if config.max_minutes is not None:
        fractions.append(progress.seconds / (60.0 * config.max_minutes))
    if config.max_epochs is not None or not fractions:
        fractions.append(progress.epochs(train_tokens) / (config.max_epochs or 1.0))
    return max(fractions)


def schedule_progress(config: TrainConfig, progress: Progress, train_tokens: int) -> float:
    """Where the learning rate is in its cosine: over `decay_steps` when set, else over the budget."""
    if config.decay_steps is not None:
        return progress.step / config.decay_steps
    return budget_used(config, progress, train_tokens)
