"""Batches of random windows from a flat token array (nanoGPT style), reproducible from the seed and the step.

The windows of step `s` are drawn from a generator seeded by (seed, s) alone, so the step number is the whole
data position: a resumed run draws the very windows it would have drawn, with no sampler state to save. Every
process draws the same global set of windows for a step and reads only its own share, so the global batch of a
step does not depend on how many processes share it, nor on how it is split into micro-batches.
"""

from __future__ import annotations

import numpy as np
import torch

from rapgpt.errors import DataError

TRAIN_STREAM, EVAL_STREAM = 0, 1


def check_length(tokens: np.ndarray, block_size: int, split: str) -> None:
    if len(tokens) == 0:
        raise DataError(
            f"the dataset's {split} split is empty, so the run would have nothing to "
            f"{'evaluate' if split == 'val' else 'train'} on: prepare the dataset again with --val-fraction above 0 "
            "(a file of many songs without 2+ blank lines between them needs --separator)"
        )
    if len(tokens) <= block_size:
        raise DataError(
            f"the {split} split has {len(tokens)} tokens, too few for one window of the context length "
            f"{block_size} plus one: use a larger dataset or validation share, or a shorter --block-size"
        )


def windows(tokens: np.ndarray, starts: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, (len(starts), block_size) each, for windows beginning at `starts`."""
    w = torch.from_numpy(tokens[starts[:, None] + np.arange(block_size + 1)].astype(np.int64))
    return w[:, :-1], w[:, 1:]


class WindowSampler:
    """The micro-batches one process trains on at each step."""

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, grad_accum: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        check_length(tokens, block_size, "train")
        self.tokens, self.block_size, self.seed = tokens, block_size, seed
        self.shape = (grad_accum, world_size, batch_size)
        self.rank = rank

    @property
    def tokens_per_step(self) -> int:
        """Training tokens consumed by one optimizer step over all processes."""
        return int(np.prod(self.shape)) * self.block_size

    def micro_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(TRAIN_STREAM, step)))
        starts = rng.integers(0, len(self.tokens) - self.block_size, size=self.shape)
        return [windows(self.tokens, micro, self.block_size) for micro in starts[:, self.rank]]


def eval_windows(tokens: np.ndarray, block_size: int, count: int, seed: int, split: str,
                 rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of `count` windows of a split, the same at every evaluation; this process's share of them."""
    check_length(tokens, block_size, split)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, split == "val")))
    starts = rng.integers(0, len(tokens) - block_size, size=count)
    return windows(tokens, starts[rank::world_size], block_size)
