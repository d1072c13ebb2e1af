"""Choosing the next token: penalties, temperature, top-k, top-p, min-p, then a draw from a per-sequence RNG.

Everything here works on the logits of one sequence (a vector over the vocabulary), so that sequences sharing a
batch keep their own settings and their own random stream: a seeded request samples the same tokens whatever else
is in the batch. The history and the random stream live on the logits' device.
"""

from __future__ import annotations

import math

import torch

from rapgpt.generate.params import SamplingParams

# top-p first looks among this many most likely tokens, and sorts the whole vocabulary only when they do not
# already hold the requested probability mass (rare with lyrics-like temperatures).
TOP_P_CANDIDATES = 256


class TokenHistory:
    """What the penalties need to know about the tokens so far, kept as vocabulary-sized vectors and only when a
    penalty is in use."""

    def __init__(self, prompt: list[int], vocab_size: int, params: SamplingParams, device: torch.device | str = "cpu"):
        self.seen = None  # prompt and continuation, for the repetition penalty
        self.counts = None  # occurrences in the continuation, for the frequency and presence penalties
        if params.repetition_penalty != 1:
            self.seen = torch.zeros(vocab_size, dtype=torch.bool, device=device)
            self.seen[torch.tensor(prompt, dtype=torch.long, device=device)] = True
        if params.frequency_penalty or params.presence_penalty:
            self.counts = torch.zeros(vocab_size, device=device)

    def add(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = True
        if self.counts is not None:
            self.counts[token] += 1


def apply_penalties(logits: torch.Tensor, history: TokenHistory, params: SamplingParams) -> torch.Tensor:
    """Repetition penalty as in CTRL (a seen token's logit is divided by it when positive, multiplied when
    negative), then OpenAI's frequency and presence penalties."""
    if history.seen is not None:
        penalized = torch.where(logits > 0, logits / params.repetition_penalty, logits * params.repetition_penalty)
        logits = torch.where(history.seen, penalized, logits)
    if history.counts is not None:
        c = history.counts
        logits = logits - params.frequency_penalty * c - params.presence_penalty * (c > 0).float()
    return logits


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Logits divided by the temperature, with -inf for every token that top-k, then top-p, then min-p exclude.

    top-k keeps exactly k tokens; top-p keeps each token whose more likely predecessors hold less than top_p of
    the probability (so at least one token); min-p keeps tokens with probability >= min_p x the largest one.
    """
    logits = logits / params.temperature
    vocab = logits.numel()
    if params.top_k is not None and params.top_k < vocab:
        values, index = torch.topk(logits, params.top_k)
        logits = torch.full_like(logits, -math.inf).scatter_(0, index, values)
    if params.top_p is not None and params.top_p < 1:
        logits = _top_p(logits, params.top_p)
    if params.min_p:
        probs = torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(probs < params.min_p * probs.max(), -math.inf)
    return logits


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, index = torch.topk(probs, min(TOP_P_CANDIDATES, probs.numel()))
    if sorted_probs.sum() < top_p:
        sorted_probs, index = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=0) - sorted_probs  # probability held by the more likely tokens
    keep = index[before < top_p]
    return torch.full_like(logits, -math.inf).scatter_(0, keep, logits[keep])


def sample_token(
    logits: torch.Tensor, history: TokenHistory, params: SamplingParams, generator: torch.Generator
) -> int:
    """The next token for one sequence, from its float32 logits over the vocabulary."""
    logits = apply_penalties(logits, history, params)
    if params.greedy:
        return int(logits.argmax())
    probs = torch.softmax(filter_logits(logits, params), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
