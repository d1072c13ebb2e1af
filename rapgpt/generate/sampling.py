"""Choosing the next token: penalties, temperature, top-k, top-p, min-p, then a draw from a per-sequence RNG.

The penalties work on one sequence's logits (a vector over the vocabulary); the filters and the draw work on the
rows of a batch whose sequences share their filter settings, each row drawn with its own random stream, so that a
seeded request samples the same tokens whatever else is in the batch. Every operation is row by row (a row's result
does not depend on the others), and a batch pays Python's overhead once, not once per sequence. The history and
the random streams live on the logits' device.

On the CPU the filters and the draw run in the native sampler (kernels/sample.cpp) where it is built: the same
tokens for the same random variates, up to rounding at the edge of the top-p set, in a few passes over the
vocabulary instead of a dozen. The PyTorch path here is its reference and the fallback.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rapgpt.generate import kernels
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


def filter_key(params: SamplingParams) -> tuple:
    """What `filter_logits` and `sample_tokens` read of the settings: rows whose keys are equal are sampled
    together."""
    return params.temperature, params.top_k, params.top_p, params.min_p


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Logits divided by the temperature, with -inf for every token that top-k, then top-p, then min-p exclude;
    `logits` is one vector over the vocabulary or a batch of rows.

    top-k keeps exactly k tokens; top-p keeps each token whose more likely predecessors hold less than top_p of
    the probability (so at least one token); min-p keeps tokens with probability >= min_p x the largest one.
    """
    rows = logits.reshape(-1, logits.shape[-1]) / params.temperature
    if params.top_k is not None and params.top_k < rows.shape[-1]:
        values, index = largest(rows, params.top_k)
        rows = torch.full_like(rows, -math.inf).scatter_(-1, index, values)
    if params.top_p is not None and params.top_p < 1:
        rows = _top_p(rows, params.top_p)
    if params.min_p:
        probs = torch.softmax(rows, dim=-1)
        rows = rows.masked_fill(probs < params.min_p * probs.amax(-1, keepdim=True), -math.inf)
    return rows.view_as(logits)


def largest(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest values of each row in descending order and their indices, as `torch.topk`; on the CPU by
    NumPy's partial sort, 2-3x faster for GPT-2's vocabulary (torch.topk alone took 0.2-0.6 ms of a decoding step;
    NumPy's argmax is faster likewise)."""
    vocab = rows.shape[-1]
    if rows.device.type != "cpu" or k >= vocab:
        return torch.topk(rows, k)
    v = rows.numpy()
    row = np.arange(len(v))[:, None]
    part = np.argpartition(v, vocab - k, axis=-1)[:, vocab - k :]
    order = part[row, np.argsort(-v[row, part], axis=-1, kind="stable")]
    return torch.from_numpy(v[row, order]), torch.from_numpy(order)


def _top_p(rows: torch.Tensor, top_p: float) -> torch.Tensor:
    probs = torch.softmax(rows, dim=-1)
    candidates = min(TOP_P_CANDIDATES, rows.shape[-1])
    kept = torch.full_like(rows, -math.inf)
    # Flat rows, whose `candidates` most likely tokens cannot hold top_p, are not looked for among them.
    peaked = (probs.amax(-1) * candidates >= top_p).tolist()
    search = [i for i, p in enumerate(peaked) if p]
    flat = [i for i, p in enumerate(peaked) if not p]
    if search:
        sorted_probs, index = largest(probs[search], candidates)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # probability held by the more likely tokens
        values = rows[search].gather(-1, index).masked_fill_(before >= top_p, -math.inf)
        kept[search] = kept[search].scatter_(-1, index, values)
        held = (sorted_probs.sum(-1) >= top_p).tolist()
        flat += [i for i, enough in zip(search, held, strict=True) if not enough]
    # The rest, one at a time: bands of equal width in logit, from the largest down (excluded tokens, at -inf, fall
    # in the last one): every token of a band before the one where the mass reaches top_p is kept, every token
    # after it is left out. In NumPy (1.4x faster than the same in PyTorch on a CPU core for GPT-2's vocabulary);
    # logits on an accelerator come to the CPU for it, one vector per step.
    for i in flat:
        banded = _top_p_bands(rows[i].cpu().numpy().copy(), probs[i].cpu().numpy().astype(np.float64), top_p)
        kept[i] = torch.from_numpy(banded).to(kept.device)
    return kept


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


def uniforms(generators: list[torch.Generator]) -> torch.Tensor:
    """One variate in [0, 1) from each sequence's own generator: all the randomness of its draw."""
    return torch.cat([torch.rand(1, generator=g, device=g.device) for g in generators])


def draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token for each row of `probs` (each summing to about 1) at its variate `u`, by inverting the row's
    cumulative sum. Exact like `torch.multinomial`, which for one draw makes an exponential variate per token
    instead: 1.3 ms for GPT-2's vocabulary on a CPU core, against 0.05 ms."""
    cumulative = torch.cumsum(probs, dim=-1)
    target = u.to(cumulative.dtype).mul_(cumulative[:, -1]).unsqueeze_(-1)
    return torch.searchsorted(cumulative, target, right=True).squeeze_(-1).clamp_(max=probs.shape[-1] - 1)


def sample_tokens(rows: torch.Tensor, params: SamplingParams, generators: list[torch.Generator]) -> list[int]:
    """The next token of each sequence, from its float32 logits (one row each, penalties applied) and its own
    generator; the rows share `params`' filter settings."""
    if params.greedy:
        best = torch.from_numpy(rows.numpy().argmax(-1)) if rows.device.type == "cpu" else rows.argmax(-1)
        return best.tolist()
    u = uniforms(generators)
    if rows.device.type == "cpu" and kernels.sampler_available():
        probs = torch.softmax(rows / params.temperature, dim=-1)
        top_k, top_p, min_p = params.top_k or 0, params.top_p or 1.0, params.min_p or 0.0
        return torch.ops.rapgpt.sample_rows(probs, u.double(), top_k, top_p, min_p).tolist()
    return draw(torch.softmax(filter_logits(rows, params), dim=-1), u).tolist()
