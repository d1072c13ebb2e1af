"""Intrinsic quality: cross-entropy, perplexity and next-token accuracy of a model on a dataset split.

Losses are given per token and per character. A character model and a BPE model cut the same text into different
numbers of tokens, so only the per-character figure (bits per character) compares them: it is the total loss in
bits over the number of characters of the predicted text (each end-of-text counts as one character).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import DataError
from rapgpt.model import GPT


@dataclass(frozen=True)
class Intrinsic:
    tokens: int  # predicted tokens
    characters: int
    loss: float  # mean cross-entropy per token, in nats
    perplexity: float
    accuracy: float  # share of tokens that are the model's most likely next token
    bits_per_token: float
    bits_per_character: float


def token_stream(dataset: TokenDataset, split: str, artist: str | None = None) -> np.ndarray:
    """The split's tokens; with an artist, only that artist's songs, each followed by the end-of-text id."""
    if artist is None:
        return np.asarray(dataset.tokens(split))
    tokens = dataset.tokens(split)
    spans = dataset.songs(split, artist)
    if not spans:
        raise DataError(f"no {split} songs by {artist!r} in {dataset.path}: check the name (it is case-sensitive)")
    return np.concatenate([tokens[s.start : s.end + 1] for s in spans])


def characters(tokenizer: Tokenizer, ids: np.ndarray) -> int:
    eot = ids == tokenizer.eot_id
    return len(tokenizer.decode(ids[~eot].tolist())) + int(eot.sum())


def window_starts(n_tokens: int, block_size: int, max_tokens: int | None) -> list[int]:
    """Where each window of block_size + 1 tokens starts: all of the stream back to back, or, when that exceeds
    max_tokens, evenly spread windows covering max_tokens predictions (a sample of every part of the split)."""
    if n_tokens < 2:
        return []
    if max_tokens is None or max_tokens >= n_tokens - 1:
        return list(range(0, n_tokens - 1, block_size))
    count = max(1, max_tokens // block_size)
    last = n_tokens - 1 - block_size
    return sorted({int(s) for s in np.linspace(0, last, count)})


def window_scores(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[summed cross-entropy in nats, correctly predicted tokens, predicted tokens] of windows (B, T) of `inputs`
    and their next tokens `targets`, as float64 on the model's device (read nothing back, so nothing waits). The
    one scoring of both the training loop's evaluations and `rapgpt eval`'s intrinsic scores."""
    logits = model(inputs)[0].float()
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
    correct = (logits.argmax(-1) == targets).sum()
    return torch.stack([loss.double(), correct.double(), torch.tensor(targets.numel(), dtype=torch.float64,
                                                                      device=targets.device)])


@torch.inference_mode()
def intrinsic(
    model: GPT,
    tokenizer: Tokenizer,
    stream: np.ndarray,
    max_tokens: int | None = 65536,
    batch_size: int = 8,
    progress: bool = False,
) -> Intrinsic:
    """Evaluate `model` on a token stream cut into windows of its context length; each window's first token is
    context only, every other token is predicted from the tokens before it in its window."""
    T = model.config.block_size
    starts = window_starts(len(stream), T, max_tokens)
    if not starts:
        raise DataError("the evaluation text has fewer than two tokens: nothing to predict")
    device = next(model.parameters()).device
    windows = [torch.from_numpy(np.asarray(stream[s : s + T + 1], dtype=np.int64)) for s in starts]
    totals, chars = torch.zeros(3, dtype=torch.float64, device=device), 0
    by_length: dict[int, list[torch.Tensor]] = {}
    for w in windows:  # the last window may be shorter: batch windows of equal length together
        by_length.setdefault(len(w), []).append(w)
    batches = [group[i : i + batch_size] for group in by_length.values() for i in range(0, len(group), batch_size)]
    for batch in tqdm(batches, desc="intrinsic", disable=not progress):
        x = torch.stack(batch)
        totals += window_scores(model, x[:, :-1].to(device), x[:, 1:].to(device))
        chars += sum(characters(tokenizer, t.numpy()) for t in x[:, 1:])
    total_loss, correct, count = totals.tolist()
    loss = total_loss / count
    return Intrinsic(
        tokens=int(count),
        characters=chars,
        loss=loss,
        perplexity=math.exp(loss),
        accuracy=correct / count,
        bits_per_token=loss / math.log(2),
        bits_per_character=total_loss / math.log(2) / max(chars, 1),
    )
