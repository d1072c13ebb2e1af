"""Writing line by line to a rhyme scheme: K candidate lines sampled together, the best one kept.

For each line, K candidates continue the text so far as K sequences of the batched decoder: they share the same
prefix, which the decoder prefills once and copies into the other slots. Each candidate ends at its line break. A
candidate's score is the model's own mean log-probability per character plus `rhyme_weight` times how well its end
rhymes (`rapgpt.rhyme.line_rhyme`) with the earlier lines of its stanza that the scheme gives the same letter; the
best lyric line is kept (lines without words, or cut short, only when no candidate is better), and the next line
continues from it. A line is decided once QUORUM of its candidates have ended at a line break: the others, the
longest ones, are stopped there rather than waited for (a few run-on candidates would otherwise keep the whole
batch stepping, and sliding its window, long after the line is as good as written). Which candidates end first
follows from their seeds, so a seeded verse is still written the same each time. While a candidate is written, a
`RhymeGuide` raises its line break where the line so far rhymes with its partners (`rhyme_guide`), and for a BPE
model the word tokens that rhyme with them, so that more candidates end on a rhyme than chance would give. Lines
the prompt already holds count for the scheme, so a user can write the first line and let the model answer it.

`LineWriter` wraps a `BatchDecoder` with the decoder's own interface (`add`, `cancel`, `step`, `has_work`), so
that the CLI and the server run verses and plain sequences side by side: a verse's events carry its own id
(negative, so that it never meets a sequence id) and one piece of text per kept line.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import re
from dataclasses import dataclass, replace

import torch

from rapgpt.data.tokenizer import Tokenizer
from rapgpt.evaluate.text import SECTION_TAG, lyric_lines, words
from rapgpt.generate.decoder import BatchDecoder, Completion, Event, nth_sample_params
from rapgpt.generate.lexicon import Speller
from rapgpt.generate.params import SamplingParams, WritingParams
from rapgpt.rhyme import line_rhyme

LINE_END = "\n"
# Once a candidate line holds this share of its partner line's words, the guide leans it toward the words that
# rhyme with its partner, where a token is a whole word (BPE): lines then pair in length as well as in sound.
LEAN_AFTER = 0.5
WORD_TOKEN = re.compile(r" [A-Za-z']*[A-Za-z]+[A-Za-z']*")  # " rain", " gettin'": a word and the space before it
LINE_ROOM = 2  # a line may take up to 1/LINE_ROOM of the context before the decoder has to slide its window
QUORUM = 0.75  # the share of a line's candidates that must end at a line break before the line is decided


def candidate_seeds(verse_seed: int) -> int:
    """The first seed of a verse's candidates (the n-th candidate of the whole verse takes this + n): verse seeds
    spread far apart, so that verses of consecutive seeds (several samples of one prompt) share no candidates."""
    return (verse_seed * 0x9E3779B97F4A7C15) % 2**63  # an odd multiplier: distinct seeds stay distinct


def partners(scheme: str, index: int) -> list[int]:
    """The earlier lines of line `index`'s stanza that `scheme` makes it rhyme with (none for free writing)."""
    if scheme == "free":
        return []
    stanza = len(scheme)
    start = index - index % stanza
    return [j for j in range(start, index) if scheme[j % stanza] == scheme[index % stanza]]


def rhyme_score(line_words: list[str], rhymes_with: list[list[str]]) -> float:
    """How well a line's end rhymes with the lines it is paired with, on average (`line_rhyme`)."""
    if not line_words or not rhymes_with:
        return 0.0
    return sum(line_rhyme(line_words, p) for p in rhymes_with) / len(rhymes_with)


@functools.lru_cache(maxsize=8)
def line_break_ids(tokenizer: Tokenizer) -> torch.Tensor:
    """The tokens whose text breaks a line."""
    return torch.tensor([i for i, text in enumerate(tokenizer.token_texts) if LINE_END in text])


@functools.lru_cache(maxsize=8)
def word_tokens(tokenizer: Tokenizer) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The tokens that are a whole word after a space (" rain"), and their words: most common words of a BPE
    vocabulary; a character model has none."""
    found = [(i, text[1:].lower()) for i, text in enumerate(tokenizer.token_texts) if WORD_TOKEN.fullmatch(text)]
    return tuple(i for i, _ in found), tuple(w for _, w in found)


class RhymeGuide:
    """Leans a candidate line toward ending on a rhyme with its partners, by `strength` times the rhyme score: the
    logits of the line-breaking tokens rise where the line so far rhymes (more on a perfect rhyme than on a slant
    one, never on the partner's own word), and, once the line holds LEAN_AFTER of its partner's words, so do the
    logits of the word tokens that rhyme. A character model spells its rhyming word letter by letter, so only the
    line break leans there; a BPE model writes most words as one token, which can lean as a whole."""

    def __init__(self, tokenizer: Tokenizer, partial: str, rhymes_with: list[list[str]], strength: float):
        self.break_ids = line_break_ids(tokenizer)
        self.partial = partial
        self.rhymes_with = rhymes_with
        self.strength = strength
        ids, found = word_tokens(tokenizer)
        scores = [rhyme_score([w], rhymes_with) for w in found]
        self.word_ids = torch.tensor([i for i, s in zip(ids, scores, strict=True) if s > 0], dtype=torch.long)
        self.word_scores = torch.tensor([s for s in scores if s > 0])
        self.lean_after = max(1, math.ceil(LEAN_AFTER * min(len(p) for p in rhymes_with)))

    def __call__(self, text: str, logits: torch.Tensor) -> torch.Tensor:
        line = words(self.partial + text)
        score = rhyme_score(line, self.rhymes_with)
        lean = len(self.word_ids) > 0 and len(line) >= self.lean_after
        if not score and not lean:
            return logits
        steered = logits.clone()
        if score:
            steered[self.break_ids.to(logits.device)] += self.strength * score
        if lean:
            steered[self.word_ids.to(logits.device)] += self.strength * self.word_scores.to(logits.device)
        return steered


@dataclass(frozen=True)
class Candidate:
    completion: Completion
    words: list[str]  # the words of the whole line (a partial line of the prompt included)
    score: float  # mean log-probability per character + rhyme_weight x rhyme

    @property
    def whole_line(self) -> bool:
        """A line of lyrics that ended at a line break (not a blank line, a section tag, the song's end or the
        token budget)."""
        return self.completion.finish_reason == "stop" and bool(self.words)


class Verse:
    """One text written line by line on a decoder. Feed it the events of its candidates; it answers with one
    event per kept line, the last one carrying the completion."""

    def __init__(self, verse_id: int, decoder: BatchDecoder, prompt: str, params: SamplingParams,
                 writing: WritingParams, speller: Speller | None = None):
        self.id = verse_id
        self.decoder = decoder
        self.params = params
        self.writing = writing
        self.speller = speller
        self.seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**63)
        self.prompt_ids = decoder.encode_prompt(prompt)
        complete, _, self.partial = prompt.rpartition(LINE_END)  # the prompt's unfinished last line
        self.lines = [words(line) for line in lyric_lines(complete)]  # every lyric line so far, as words
        self.text = ""  # the kept continuation
        self.tokens: list[int] = []
        self.logprob = 0.0
        self.written = 0  # lyric lines kept
        self.kept = 0  # lines kept, blank lines and section tags included
        self.pending: dict[int, Completion | None] = {}  # this line's candidates (sequence id -> completion)
        self.cancelled = False
        self.done = False
        self._start_line()

    def _start_line(self) -> None:
        """Queue this line's K candidates, continuing the prompt and the kept lines."""
        context = self.prompt_ids + self.decoder.tokenizer.encode(self.text)
        # Leave room for the line in the context, so that K candidates need not each slide their window (a prefill
        # apiece) before their line ends: the prefix is cut here, once, and prefilled once for all of them.
        room = min(self.params.max_new_tokens, self.decoder.context_length // LINE_ROOM)
        if len(context) + room > self.decoder.context_length:
            context = context[-max(1, self.decoder.context_length - room) :]
        k = self.writing.num_candidates
        base = replace(self.params, seed=candidate_seeds(self.seed), stop=(LINE_END,))
        rhymes_with = self._rhymes_with()
        guide = None
        if rhymes_with and self.writing.rhyme_guide:
            guide = RhymeGuide(self.decoder.tokenizer, self.partial, rhymes_with, self.writing.rhyme_guide)
        self.pending = {
            self.decoder.add_tokens(list(context), nth_sample_params(base, self.kept * k + j), self.speller,
                                    guide): None
            for j in range(k)
        }

    def _rhymes_with(self) -> list[list[str]]:
        """The words of the lines that the next line rhymes with."""
        return [self.lines[j] for j in partners(self.writing.scheme, len(self.lines))]

    def cancel(self) -> None:
        self.cancelled = True
        for seq_id in self.pending:
            self.decoder.cancel(seq_id)

    def feed(self, event: Event) -> Event | None:
        """Take an event of one of the candidates; return this verse's event once the line is decided."""
        if event.completion is None or event.seq_id not in self.pending:  # a straggler stopped after its line
            return None
        self.pending[event.seq_id] = event.completion
        ended = [c for c in self.pending.values() if c is not None]
        if self.cancelled:
            return self._finish("", None, "cancelled") if len(ended) == len(self.pending) else None
        quorum = math.ceil(QUORUM * len(self.pending))
        if len(ended) < len(self.pending) and sum(c.finish_reason == "stop" for c in ended) < quorum:
            return None
        for seq_id, c in self.pending.items():
            if c is None:
                self.decoder.cancel(seq_id)
        return self._keep(self.choose(ended))

    def choose(self, completions: list[Completion]) -> Candidate:
        """The best candidate: a whole lyric line if there is one, then the highest score."""
        rhymes_with = self._rhymes_with()
        scored = []
        for c in completions:
            line_words = words(self.partial + c.text)
            if SECTION_TAG.match(self.partial + c.text):
                line_words = []
            score = (logprob_per_char(c, self.decoder.tokenizer)
                     + self.writing.rhyme_weight * rhyme_score(line_words, rhymes_with))
            scored.append(Candidate(c, line_words, score))
        return max(scored, key=lambda cand: (cand.whole_line, cand.score))

    def _keep(self, best: Candidate) -> Event:
        c = best.completion
        piece = c.text if c.finish_reason == "eot" else c.text + LINE_END
        self.tokens += c.tokens
        self.logprob += c.logprob
        self.kept += 1
        if best.words:
            self.lines.append(best.words)
            self.written += 1
        self.partial = ""
        start = len(self.text)
        self.text += piece
        cut = self._find_stop(start)
        if cut is not None:
            kept = self.text[start:cut]
            self.text = self.text[:cut]
            return self._finish(kept, c.tokens[-1] if c.tokens else None, "stop")
        last = c.tokens[-1] if c.tokens else None
        if c.finish_reason == "eot":
            return self._finish(piece, last, "eot")
        # Enough lyric lines, or a model that keeps writing blank lines: the verse ends.
        if self.written >= self.writing.num_lines or self.kept >= 2 * self.writing.num_lines:
            return self._finish(piece, last, "length")
        self._start_line()
        return Event(self.id, piece, last)

    def _find_stop(self, start: int) -> int | None:
        """Where the user's stop strings cut the text: before the first one that the new line completes."""
        found = []
        for s in self.params.stop:
            at = self.text.find(s, max(0, start - len(s) + 1))
            if at != -1:
                found.append((at + len(s), at))
        return min(found)[1] if found else None

    def _finish(self, piece: str, token: int | None, reason: str) -> Event:
        self.done = True
        self.pending = {}
        completion = Completion(self.text, self.tokens, reason, len(self.prompt_ids), 0, self.seed, self.logprob)
        return Event(self.id, piece, token, completion)


class LineWriter:
    """A `BatchDecoder` that also writes verses: `add` with line-by-line WritingParams starts a `Verse`, anything
    else is a plain sequence of the decoder. Verses and sequences step together in the same batch."""

    def __init__(self, decoder: BatchDecoder):
        self.decoder = decoder
        self.verses: dict[int, Verse] = {}
        self._owner: dict[int, Verse] = {}  # candidate sequence id -> its verse
        self._ids = itertools.count(-1, -1)

    @property
    def has_work(self) -> bool:
        return self.decoder.has_work

    @property
    def max_batch(self) -> int:
        return self.decoder.max_batch

    @property
    def busy_slots(self) -> int:
        """Sequences running or waiting in the decoder (a verse holds one per candidate)."""
        return len(self.decoder.running) + len(self.decoder.waiting)

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.decoder.encode_prompt(prompt)

    def add(self, prompt: str, params: SamplingParams, writing: WritingParams | None = None,
            speller: Speller | None = None) -> int:
        if writing is None or not writing.line_by_line:
            return self.decoder.add(prompt, params, speller)
        verse = Verse(next(self._ids), self.decoder, prompt, params, writing, speller)
        self.verses[verse.id] = verse
        self._owner.update((seq_id, verse) for seq_id in verse.pending)
        return verse.id

    def cancel(self, seq_id: int) -> None:
        if seq_id in self.verses:
            self.verses[seq_id].cancel()
        else:
            self.decoder.cancel(seq_id)

    def step(self) -> list[Event]:
        events = []
        for event in self.decoder.step():
            verse = self._owner.get(event.seq_id)
            if verse is None:
                events.append(event)
                continue
            if event.completion is not None:
                del self._owner[event.seq_id]
            result = verse.feed(event)
            if result is None:
                continue
            events.append(result)
            if verse.done:
                del self.verses[verse.id]
            else:
                self._owner.update((seq_id, verse) for seq_id in verse.pending)
        return events


def write(decoder: BatchDecoder, prompts: list[str], params: SamplingParams, writing: WritingParams | None = None,
          speller: Speller | None = None) -> list[Completion]:
    """Write a continuation of each prompt (prompt i with seed + i) on `decoder`: line by line when `writing`
    asks for it, else as `generate` does."""
    writer = LineWriter(decoder)
    ids = [writer.add(p, nth_sample_params(params, i), writing, speller) for i, p in enumerate(prompts)]
    done: dict[int, Completion] = {}
    while writer.has_work:
        done.update((e.seq_id, e.completion) for e in writer.step() if e.completion is not None)
    return [done[i] for i in ids]


def logprob_per_char(completion: Completion, tokenizer: Tokenizer) -> float:
    """The model's mean log-probability per character of a completion's tokens, an ending end-of-text token
    counted as one: a character model's mean per token, and on the same scale for a BPE model, whose tokens hold
    several characters each (so `rhyme_weight` means the same for both)."""
    n = len(tokenizer.decode(completion.tokens)) + (completion.finish_reason == "eot")
    return completion.logprob / n if n else -math.inf


def mean_logprob(completion: Completion) -> float:
    """The model's mean log-probability per token of a completion, an ending end-of-text token included (-inf
    for one without tokens)."""
    n = completion.completion_tokens + (completion.finish_reason == "eot")
    return completion.logprob / n if n else -math.inf
