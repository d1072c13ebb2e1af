"""Choosing the next token: penalties, temperature, top-k, top-p, min-p, then a draw from a per-sequence RNG.

Everything here works on the logits of one sequence (a vector over the vocabulary), so that sequences sharing a
batch keep their own settings and their own random stream: a seeded request samples the same tokens whatever else
is in the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rapgpt.errors import ConfigError

# top-p first looks among this many most likely tokens, and sorts the whole vocabulary only when they do not
# already hold the requested probability mass (rare with lyrics-like temperatures).
TOP_P_CANDIDATES = 256


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a continuation. The defaults suit lyrics: varied, yet without the incoherent tail of the
    distribution."""

    max_new_tokens: int = 256  # token budget for the continuation
    temperature: float = 0.8  # 0 = greedy (always the most likely token)
    top_k: int | None = None  # keep only the k most likely tokens
    top_p: float | None = 0.95  # keep the smallest set of most likely tokens holding this probability
    min_p: float | None = None  # keep tokens at least this fraction as likely as the most likely one
    repetition_penalty: float = 1.0  # > 1 discourages any token already in the prompt or the continuation
    frequency_penalty: float = 0.0  # subtracted from a logit once per earlier occurrence in the continuation
    presence_penalty: float = 0.0  # subtracted from a logit once if the token occurs in the continuation
    stop: tuple[str, ...] = ()  # the continuation ends before the first of these strings
    seed: int | None = None  # makes the draws reproducible

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        _check(_is_int(self.max_new_tokens) and self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens,
               "a positive integer")
        _check(_is_real(self.temperature) and self.temperature >= 0, "temperature", self.temperature,
               "a number >= 0 (0 = greedy; 0.7 to 1.0 suits lyrics)")
        _check(self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1), "top_k", self.top_k,
               "a positive integer, or None to disable it")
        _check(self.top_p is None or (_is_real(self.top_p) and 0 < self.top_p <= 1), "top_p", self.top_p,
               "in (0, 1], or None to disable it")
        _check(self.min_p is None or (_is_real(self.min_p) and 0 <= self.min_p <= 1), "min_p", self.min_p,
               "in [0, 1], or None to disable it")
        _check(_is_real(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty",
               self.repetition_penalty, "a number > 0 (1 = off, 1.1 to 1.3 discourages repeats)")
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            _check(_is_real(value) and -2 <= value <= 2, name, value, "in [-2, 2] (0 = off)")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop", self.stop, "non-empty strings")
        _check(self.seed is None or (_is_int(self.seed) and 0 <= self.seed < 2**63), "seed", self.seed,
               "an integer in [0, 2**63), or None for a random one")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {expected}, got {value!r}")


class TokenHistory:
    """What the penalties need to know about the tokens so far, kept as vocabulary-sized vectors and only when a
    penalty is in use."""

    def __init__(self, prompt: list[int], vocab_size: int, params: SamplingParams):
        self.seen = None  # prompt and continuation, for the repetition penalty
        self.counts = None  # occurrences in the continuation, for the frequency and presence penalties
        if params.repetition_penalty != 1:
            self.seen = torch.zeros(vocab_size, dtype=torch.bool)
            self.seen[torch.tensor(prompt, dtype=torch.long)] = True
        if params.frequency_penalty or params.presence_penalty:
            self.counts = torch.zeros(vocab_size)

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
