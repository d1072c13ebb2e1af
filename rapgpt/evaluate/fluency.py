"""Fluency: is a text made of real words in real word order? Measured before any style or rhyme figure, because a
style classifier and a rhyme counter score non-words as readily as lyrics.

Three measures, each in a generation and in real held-out chunks alike:

    real-word share     words found in CMUdict (as the rhyme measures look them up) or seen at least
                        `MIN_WORD_COUNT` times in the reference songs
    known-bigram share  word bigrams of the text that occur in the reference songs: near 0 for nonsense, high for
                        lyrics; a model-free check of local word order
    log-probability     mean log-probability per token under a reference model that is not the one being judged
                        (only with `rapgpt eval --reference-model RUN`)

A text is fluent when each measure reaches its threshold, set from the same measure over real held-out chunks:
their `THRESHOLD_QUANTILE` quantile, lowered by `MARGIN` times its distance to their median. A real chunk rarely
falls below it (the margin spares a wordy artist's coinages), while text clearly below real songs does, on any
measure's scale.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pronouncing
import torch
from torch.nn import functional as F

from rapgpt.data.tokenizer import CharTokenizer, Tokenizer
from rapgpt.evaluate.originality import NgramIndex, ngram_hashes, word_hashes
from rapgpt.evaluate.text import lyric_lines, words
from rapgpt.model import GPT

MIN_WORD_COUNT = 3  # a word the reference songs use this often is a word of the genre, even if CMUdict lacks it
THRESHOLD_QUANTILE = 0.05  # of the real held-out chunks' figures: about 1 real chunk in 20 falls below it...
MARGIN = 0.5  # ...and the threshold lies this many times its distance to the median below it
MEASURES = ("real_word_share", "known_bigram_share", "reference_logprob")
NUMBER = re.compile(r"[0-9]+(?:'?s)?")  # "50", "90s": numbers are words


@functools.cache
def in_cmudict(word: str) -> bool:
    """Whether CMUdict knows the word, in the forms the rhyme measures try ("gettin'" as "getting")."""
    bare = word.strip("'")
    candidates = (word, bare, re.sub(r"in'?$", "ing", word), bare.replace("'", ""))
    return any(pronouncing.phones_for_word(c) for c in candidates)


@dataclass(frozen=True)
class FluencyReference:
    """What the reference songs know: the words they use often enough, and their word bigrams."""

    vocabulary: frozenset[str]
    bigrams: NgramIndex

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = MIN_WORD_COUNT) -> FluencyReference:
        texts = list(texts)
        counts = Counter(w for text in texts for w in words(text))
        vocabulary = frozenset(w for w, c in counts.items() if c >= min_count)
        return cls(vocabulary, NgramIndex.build(texts, n=2))

    def is_word(self, word: str) -> bool:
        return word in self.vocabulary or bool(NUMBER.fullmatch(word)) or in_cmudict(word)

    def real_word_share(self, text: str) -> float:
        """Share of the text's words that are real words (0 for a text without words)."""
        tokens = words(text)
        return sum(map(self.is_word, tokens)) / len(tokens) if tokens else 0.0

    def known_bigram_share(self, text: str) -> float:
        """Share of the text's word bigrams (across its lines) found in the reference songs."""
        tokens = [w for line in lyric_lines(text) for w in words(line)]
        hashes = ngram_hashes(word_hashes(tokens), 2)
        return float(self.bigrams.contains(hashes).mean()) if len(hashes) else 0.0


@torch.inference_mode()
def mean_logprob(model: GPT, tokenizer: Tokenizer, text: str) -> float:
    """Mean log-probability (nats) per token of `text` as the start of a song under `model`. Characters a character
    model does not know are left out; a text longer than the context is read in consecutive windows."""
    if isinstance(tokenizer, CharTokenizer):
        text = "".join(c for c in text if c in tokenizer.stoi)
    ids = [tokenizer.eot_id, *tokenizer.encode(text)]
    if len(ids) < 2:
        return 0.0
    device = next(model.parameters()).device
    block = model.config.block_size
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, block):
        window = torch.tensor(ids[start : start + block + 1], device=device)
        logits, _ = model(window[None, :-1])
        total -= F.cross_entropy(logits[0].float(), window[1:], reduction="sum").item()
        count += len(window) - 1
    return total / count


@dataclass(frozen=True)
class ReferenceModel:
    """A model that reads the texts without having written them, and its name in the report."""

    name: str
    model: GPT
    tokenizer: Tokenizer


def fluency(text: str, reference: FluencyReference, model: ReferenceModel | None = None) -> dict[str, float]:
    """The fluency measures of one text (the log-probability only with a reference model)."""
    out = {"real_word_share": reference.real_word_share(text), "known_bigram_share": reference.known_bigram_share(text)}
    if model is not None:
        out["reference_logprob"] = mean_logprob(model.model, model.tokenizer, text)
    return out


def thresholds(
    real: Sequence[dict[str, float]], quantile: float = THRESHOLD_QUANTILE, margin: float = MARGIN
) -> dict[str, float]:
    """Per measure, the least a fluent text scores: the real chunks' `quantile`, lowered by `margin` times its
    distance to their median."""
    out = {}
    for k in (k for k in MEASURES if real and k in real[0]):
        low, median = np.quantile([r[k] for r in real], [quantile, 0.5])
        out[k] = float(low - margin * (median - low))
    return out


def is_fluent(figures: dict[str, float], limits: dict[str, float]) -> bool:
    return all(figures[k] >= limit for k, limit in limits.items())
