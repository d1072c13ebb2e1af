"""Choosing the next token: penalties, temperature, top-k, top-p, min-p, then a draw from a per-sequence RNG.

Everything here works on the logits of one sequence (a vector over the vocabulary), so that sequences sharing a
batch keep their own settings and their own random stream: a seeded request samples the same tokens whatever else
is in the batch. The history and the random stream live on the logits' device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rapgpt.generate.params import SamplingParams

# top-p first looks among this many most likely tokens. When they do not hold the requested probability mass (a
# flat distribution), it groups the tokens into this many bands of logit and sorts only the band where the mass is
# reached: sorting GPT-2's whole vocabulary would take milliseconds, a good share of a decoding step.
TOP_P_CANDIDATES = 256
TOP_P_BANDS = 1024
# The bands span this far below the largest logit; the last one also takes every token further down, whose
# probabilities (below e^-32 of the largest each) it sorts only in the rare case that top_p needs them.
TOP_P_BAND_RANGE = 32.0


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
        values, index = largest(logits, params.top_k)
        logits = torch.full_like(logits, -math.inf).scatter_(0, index, values)
    if params.top_p is not None and params.top_p < 1:
        logits = _top_p(logits, params.top_p)
    if params.min_p:
        probs = torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(probs < params.min_p * probs.max(), -math.inf)
    return logits


def largest(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest values in descending order and their indices, as `torch.topk`; on the CPU by NumPy's partial
    sort, 2-3x faster for GPT-2's vocabulary (torch.topk alone took 0.2-0.6 ms of a decoding step; NumPy's argmax is
    faster likewise)."""
    if values.device.type != "cpu" or k >= values.numel():
        return torch.topk(values, k)
    v = values.numpy()
    part = np.argpartition(v, v.size - k)[v.size - k :]
    order = part[np.argsort(-v[part], kind="stable")]
    return torch.from_numpy(v[order]), torch.from_numpy(order)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    probs = torch.softmax(logits, dim=-1)
    candidates = min(TOP_P_CANDIDATES, probs.numel())
    # When even `candidates` tokens of the largest probability hold less than top_p, skip looking for them.
    sorted_probs, index = largest(probs, candidates) if probs.max() * candidates >= top_p else (probs[:0], None)
    if sorted_probs.sum() >= top_p:
        before = torch.cumsum(sorted_probs, dim=0) - sorted_probs  # probability held by the more likely tokens
        keep = index[before < top_p]
        return torch.full_like(logits, -math.inf).scatter_(0, keep, logits[keep])
    # Bands of equal width in logit, from the largest down (excluded tokens, at -inf, fall in the last one): every
    # token of a band before the one where the mass reaches top_p is kept, every token after it is left out.
    # In NumPy (1.4x faster than the same in PyTorch on a CPU core for GPT-2's vocabulary); logits on an
    # accelerator come to the CPU for it, one vector per step.
    kept = _top_p_bands(logits.cpu().numpy().copy(), probs.cpu().numpy().astype(np.float64), top_p)
    return torch.from_numpy(kept).to(logits.device)


def _top_p_bands(logits: np.ndarray, probs: np.ndarray, top_p: float) -> np.ndarray:
    """`logits` (changed in place) with -inf outside the top-p set, found band by band; `probs` in float64, whose
    sums over tens of thousands of tokens do not misplace the boundary token as float32 would."""
    band = ((logits.max() - logits) * (TOP_P_BANDS / TOP_P_BAND_RANGE)).clip(max=TOP_P_BANDS - 1).astype(np.int64)
    mass = np.bincount(band, weights=probs, minlength=TOP_P_BANDS)
    through = np.cumsum(mass)
    reached = min(int(np.searchsorted(through, top_p)), TOP_P_BANDS - 1)
    members = np.flatnonzero(band == reached)
    order = np.argsort(-probs[members], kind="stable")
    sorted_probs = probs[members][order]
    before = through[reached] - mass[reached] + np.cumsum(sorted_probs) - sorted_probs
    logits[band > reached] = -math.inf
    logits[members[order[before >= top_p]]] = -math.inf
    return logits


def draw(probs: torch.Tensor, generator: torch.Generator) -> int:
    """One token drawn with probability `probs` (summing to about 1), by inverting their cumulative sum at a uniform
    variate. Exact like `torch.multinomial`, which for one draw makes an exponential variate per token instead:
    1.3 ms for GPT-2's vocabulary on a CPU core, against 0.05 ms."""
    cumulative = torch.cumsum(probs, dim=0)
    u = torch.rand((), generator=generator, dtype=cumulative.dtype) * cumulative[-1]
    return min(int(torch.searchsorted(cumulative, u, right=True)), probs.numel() - 1)


def sample_token(
    logits: torch.Tensor, history: TokenHistory, params: SamplingParams, generator: torch.Generator
) -> int:
    """The next token for one sequence, from its float32 logits over the vocabulary."""
    logits = apply_penalties(logits, history, params)
    if params.greedy:
        return int(logits.numpy().argmax()) if logits.device.type == "cpu" else int(logits.argmax())
    return draw(torch.softmax(filter_logits(logits, params), dim=-1), generator)
