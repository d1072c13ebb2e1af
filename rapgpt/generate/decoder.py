"""Batched decoding with a KV cache: the one loop behind the CLI, the server and the evaluator.

`BatchDecoder` holds a preallocated cache for `max_batch` sequences. Sequences join it at token boundaries (their
prompt prefilled in one pass into a free slot) and leave it when they finish or are cancelled, so a server can keep
one decoder running and feed it requests (continuous batching). `generate` and `stream` are thin loops over it.

Running sequences occupy cache slots 0..n-1: a finishing sequence's slot is refilled by moving the last one into
it, so each step decodes one contiguous block of the cache and its cost follows the live batch, not the capacity.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from rapgpt.data.tokenizer import CharTokenizer, Tokenizer
from rapgpt.generate.lexicon import Speller, apply_mask
from rapgpt.generate.params import SamplingParams
from rapgpt.generate.sampling import TokenHistory, apply_penalties, filter_key, sample_tokens
from rapgpt.generate.text import TextStream
from rapgpt.model import GPT, KVCache

log = logging.getLogger(__name__)

# When a sequence fills the context, its cache is refilled from this fraction of its latest tokens (a sliding
# window): keeping more context costs a refill more often.
SLIDE_KEEP = 0.75

# Steers one sequence while it is sampled: given the text it has written so far and its next-token logits, the
# logits to sample from (the model's own log-probability of what is sampled is still taken from the raw logits).
Guide = Callable[[str, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Completion:
    """A finished continuation. `text` excludes the prompt and ends before a stop string; `tokens` are the sampled
    ids (an end-of-text token that ended the sequence is not among them)."""

    text: str
    tokens: list[int]
    finish_reason: str  # "stop" (a stop string), "length" (max_new_tokens), "eot" (end of text), "cancelled"
    prompt_tokens: int  # tokens of the prompt fed to the model, start token included
    dropped_prompt_tokens: int  # tokens cut from the front of a prompt longer than the context
    seed: int  # reproduces this completion with the same prompt and parameters
    logprob: float = 0.0  # the model's log-probability of the sampled tokens (an ending end-of-text token included)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Event:
    """What one step did for one sequence: the text that became safe to show, and the completion if it ended."""

    seq_id: int
    text: str
    token: int | None  # None when the sequence was cancelled before sampling
    completion: Completion | None = None


class _Sequence:
    def __init__(self, seq_id: int, context: list[int], dropped: int, params: SamplingParams, tokenizer: Tokenizer,
                 device: torch.device, speller: Speller | None = None, guide: Guide | None = None):
        self.id = seq_id
        self.params = params
        self.context = context  # every token the model has seen or will see next, start token first
        self.prompt_tokens = len(context)
        self.dropped = dropped
        self.tokens: list[int] = []
        self.generator = torch.Generator(device=device)
        self.seed = params.seed if params.seed is not None else self.generator.seed()
        self.generator.manual_seed(self.seed)
        # The repetition penalty looks at the prompt's own tokens, not at the start token put before it.
        self.history = TokenHistory(context if dropped else context[1:], tokenizer.vocab_size, params, device)
        self.text = TextStream(tokenizer, params.stop)
        self.cached = 0  # leading tokens of `context` whose keys and values are in the cache
        self.cancelled = False
        self.logprob = 0.0
        self.speller = speller  # keeps the words in a lexicon, when set
        self.spelling = speller.start(context if dropped else context[1:]) if speller else None
        self.guide = guide

    def completion(self, finish_reason: str) -> Completion:
        return Completion(self.text.text, list(self.tokens), finish_reason, self.prompt_tokens, self.dropped,
                          self.seed, self.logprob)


class BatchDecoder:
    """Generates for up to `max_batch` sequences at once, each with its own SamplingParams and random stream.

    `add` and `cancel` only queue work, so a server may call them between steps; `step` admits waiting sequences
    into free slots, advances every running sequence by one token and reports what happened. The cache, the
    inputs, the penalties' history and the random streams live on the model's device; the cache in its dtype.
    """

    def __init__(self, model: GPT, tokenizer: Tokenizer, max_batch: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.cache: list[KVCache] = model.new_cache(max_batch)
        self.device = self.cache[0].k.device
        self.running: list[_Sequence] = []  # running[i] occupies cache slot i
        self.waiting: deque[_Sequence] = deque()
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards `waiting` and the cancel flags against calls from other threads

    @property
    def context_length(self) -> int:
        return self.model.config.block_size

    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def add(self, prompt: str, params: SamplingParams, speller: Speller | None = None) -> int:
        """Queue a prompt; return its sequence id. Raises TokenizerError for text the model cannot read. With a
        `speller`, the continuation keeps to the words of its lexicon."""
        return self.add_tokens(self.encode_prompt(prompt), params, speller)

    def add_tokens(self, ids: list[int], params: SamplingParams, speller: Speller | None = None,
                   guide: Guide | None = None) -> int:
        """Queue a prompt already encoded (as `encode_prompt` does); return its sequence id. A `guide` steers the
        sampling of this sequence (see `Guide`)."""
        limit = self.context_length
        dropped = max(0, len(ids) - limit)
        if dropped:
            log.warning("notice: the prompt is %d tokens, longer than the model's context of %d; generating from "
                        "its last %d tokens", len(ids) - 1, limit, limit)
        with self._lock:
            seq = _Sequence(next(self._ids), ids[dropped:], dropped, params, self.tokenizer, self.device, speller,
                            guide)
            self.waiting.append(seq)
        return seq.id

    def encode_prompt(self, prompt: str) -> list[int]:
        """The start token, then the prompt: songs in the training data follow an end-of-text token, so a prompt
        starts a new song, and an empty prompt generates one from scratch."""
        if isinstance(self.tokenizer, CharTokenizer):
            ids = self.tokenizer.encode(prompt, unknown="error")
        else:
            ids = self.tokenizer.encode(prompt)
        return [self.tokenizer.eot_id, *ids]

    def cancel(self, seq_id: int) -> None:
        """Stop a sequence at the next step (it is reported with finish_reason "cancelled")."""
        with self._lock:
            for seq in itertools.chain(self.running, self.waiting):
                if seq.id == seq_id:
                    seq.cancelled = True

    @torch.inference_mode()
    def step(self) -> list[Event]:
        """One token for every running sequence, after admitting waiting ones into free slots."""
        with self._lock:
            cancelled = [seq for seq in itertools.chain(self.running, self.waiting) if seq.cancelled]
            for seq in cancelled:
                if seq in self.waiting:
                    self.waiting.remove(seq)
        events = [self._finish(seq, None, "cancelled") for seq in cancelled]
        rows = self._decode()
        with self._lock:
            free = self.max_batch - len(self.running)
            admitted = [self.waiting.popleft() for _ in range(min(free, len(self.waiting)))]
        for seq in admitted:
            rows.append(self._admit(seq, rows))
        if not rows:
            return events
        logits = torch.stack(rows)[:, : self.tokenizer.vocab_size].float()
        tokens = self._sample(logits)
        chosen = torch.tensor(tokens, device=self.device)[:, None]
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, chosen)[:, 0]
        for seq, token, logprob in zip(list(self.running), tokens, logprobs.tolist(), strict=True):
            events.append(self._advance(seq, token, logprob))
        return events

    def _decode(self) -> list[torch.Tensor]:
        """Feed each running sequence its last sampled token; return the logits of their next tokens."""
        if not self.running:
            return []
        for i, seq in enumerate(self.running):
            if seq.cached == self.context_length:
                self._slide(i, seq)
        idx = torch.tensor([[seq.context[-1]] for seq in self.running], device=self.device)
        pos = torch.tensor([[seq.cached] for seq in self.running], device=self.device)
        n = len(self.running)
        logits, _ = self.model(idx, cache=[c.rows(0, n) for c in self.cache], input_pos=pos, last_only=True)
        for seq in self.running:
            seq.cached += 1
        return list(logits[:, -1])

    def _slide(self, slot: int, seq: _Sequence) -> None:
        """The context is full: refill this slot's cache from the latest tokens, so generation can go on."""
        keep = max(1, int(self.context_length * SLIDE_KEEP))
        window = seq.context[-keep:-1]  # the last token is fed by the decoding step itself
        if window:
            self._prefill(slot, window)
        seq.cached = len(window)

    def _admit(self, seq: _Sequence, logits: list[torch.Tensor]) -> torch.Tensor:
        """Place a waiting sequence in the next free slot and prefill its prompt; return its next-token logits.

        A prompt already prefilled this step (several samples of one prompt) is copied from that slot instead."""
        slot = len(self.running)
        twin = next((i for i, s in enumerate(self.running) if s.cached == 0 and s.context == seq.context), None)
        if twin is not None:
            n = len(seq.context)
            for c in self.cache:
                c.k[slot, :, :n], c.v[slot, :, :n] = c.k[twin, :, :n], c.v[twin, :, :n]
            row = logits[twin]
        else:
            row = self._prefill(slot, seq.context)
        self.running.append(seq)
        return row

    def _prefill(self, slot: int, tokens: list[int]) -> torch.Tensor:
        idx = torch.tensor([tokens], device=self.device)
        cache = [c.rows(slot, slot + 1) for c in self.cache]
        pos = torch.arange(len(tokens), device=self.device)[None]
        logits, _ = self.model(idx, cache=cache, input_pos=pos, last_only=True)
        return logits[0, -1]

    def _sample(self, logits: torch.Tensor) -> list[int]:
        """The next token of every running sequence (row i of `logits` is running[i]'s), after its guide, lexicon
        and penalties; sequences with the same filter settings are drawn together."""
        steered = logits
        groups: dict[tuple, list[int]] = {}
        for i, seq in enumerate(self.running):
            raw = logits[i]
            row = apply_penalties(self._mask(seq, raw), seq.history, seq.params)
            if row is not raw:
                steered = logits.clone() if steered is logits else steered
                steered[i] = row
            groups.setdefault(filter_key(seq.params), []).append(i)
        tokens = [0] * len(self.running)
        for members in groups.values():
            rows = steered if len(members) == len(tokens) else steered[members]
            params = self.running[members[0]].params
            drawn = sample_tokens(rows, params, [self.running[i].generator for i in members])
            for i, token in zip(members, drawn, strict=True):
                tokens[i] = token
        return tokens

    def _advance(self, seq: _Sequence, token: int, logprob: float) -> Event:
        """Record a sequence's sampled token and report the text it makes safe to show."""
        if seq.cached == 0:  # prefilled in this step
            seq.cached = len(seq.context)
        seq.logprob += logprob
        if seq.speller is not None:
            seq.spelling = seq.speller.advance(seq.spelling, token)
        if token == self.tokenizer.eot_id:
            return self._finish(seq, token, "eot")
        seq.tokens.append(token)
        seq.context.append(token)
        seq.history.add(token)
        piece = seq.text.push(token)
        if seq.text.stopped:
            return self._finish(seq, token, "stop", piece)
        if len(seq.tokens) == seq.params.max_new_tokens:
            return self._finish(seq, token, "length", piece)
        return Event(seq.id, piece, token)

    @staticmethod
    def _mask(seq: _Sequence, logits: torch.Tensor) -> torch.Tensor:
        """The logits with the tokens that the sequence's lexicon rules out at its position set to -inf, as its
        guide steers them."""
        if seq.guide is not None:
            logits = seq.guide(seq.text.text, logits)
        if seq.speller is None:
            return logits
        return apply_mask(logits, seq.speller.mask(seq.spelling))

    def _finish(self, seq: _Sequence, token: int | None, reason: str, piece: str = "") -> Event:
        """Report the end of a sequence and free its slot, moving the last running sequence into it."""
        piece += seq.text.finish()
        if seq in self.running:
            slot, last = self.running.index(seq), len(self.running) - 1
            if slot != last:
                moved = self.running[last]
                n = moved.cached or len(moved.context)
                for c in self.cache:
                    c.k[slot, :, :n], c.v[slot, :, :n] = c.k[last, :, :n], c.v[last, :, :n]
                self.running[slot] = moved
            self.running.pop()
        return Event(seq.id, piece, token, seq.completion(reason))


def generate(
    model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], params: SamplingParams, *, max_batch: int = 16,
    speller: Speller | None = None,
) -> list[Completion]:
    """Continue each prompt, up to `max_batch` at a time (keeping to a lexicon's words with `speller`). With a
    seed, prompt i samples with seed + i, so that several samples of one prompt differ and each is reproducible
    alone."""
    decoder = BatchDecoder(model, tokenizer, max_batch=max(1, min(max_batch, len(prompts))))
    ids = [decoder.add(p, nth_sample_params(params, i), speller) for i, p in enumerate(prompts)]
    done: dict[int, Completion] = {}
    while decoder.has_work:
        done.update((e.seq_id, e.completion) for e in decoder.step() if e.completion is not None)
    return [done[i] for i in ids]


def stream(model: GPT, tokenizer: Tokenizer, prompt: str, params: SamplingParams) -> Iterator[str]:
    """Yield the continuation of `prompt` in pieces as they are produced (whole characters, never a piece of a
    stop string); the generator's return value is the Completion."""
    decoder = BatchDecoder(model, tokenizer, max_batch=1)
    decoder.add(prompt, params)
    while True:
        (event,) = decoder.step()
        if event.text:
            yield event.text
        if event.completion is not None:
            return event.completion


def nth_sample_params(params: SamplingParams, i: int) -> SamplingParams:
    """The settings of the i-th of several samples: seed + i, so that samples differ yet each reproduces alone."""
    return params if params.seed is None else replace(params, seed=(params.seed + i) % 2**63)
