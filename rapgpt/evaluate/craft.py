"""Lyric craft: rhyme density, end rhymes, lexical variety, repetition and line shape.

Rhyme density follows Malmi et al., "DopeLearning" (KDD 2016): the lyric becomes a sequence of vowel phonemes
(consonants are ignored, since rappers rhyme on vowels); for each word, the rhyme length is the longest run of
vowels ending at that word which also ends at one of the previous 15 words (a different word, not
overlapping), where a run of one vowel does not count; rhyme density is the mean over the words. Repeated lines
are dropped first, so that a chorus does not rhyme with itself.

Phonemes and rhymes come from `rapgpt.rhyme` (CMUdict with a spelling fallback, schwa dropped and close vowels
merged as in the authors' Raplyzer). Figures are on CMUdict's phonemes, not the eSpeak transcription of the
paper, so compare them with the real songs' figures in the same report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rapgpt.evaluate.text import lyric_lines, words
from rapgpt.rhyme import Pronunciation, pronunciation, rhymes

__all__ = ["Craft", "Pronunciation", "craft", "distinct_n", "end_rhyme_rate", "mean_craft", "pronunciation",
           "repetition_rate", "rhyme_density"]

LOOKBACK = 15  # previous words searched for a rhyme: about a line and a half (the authors' Raplyzer uses 10)


def _unique_lines(text: str) -> list[list[str]]:
    seen, lines = set(), []
    for line in lyric_lines(text):
        ws = words(line)
        key = " ".join(ws)
        if ws and key not in seen:
            seen.add(key)
            lines.append(ws)
    return lines


def rhyme_density(text: str, lookback: int = LOOKBACK) -> float:
    """Mean rhyme length in vowels per word (DopeLearning's measure); 0 for a text of fewer than two words."""
    vowels: list[str] = []
    ends: list[int] = []  # index in `vowels` of each word's last vowel
    kept: list[str] = []
    for w in (w for line in _unique_lines(text) for w in line):
        v = pronunciation(w).vowels
        if v:  # words without a vowel ("hmm", "50") take no part, as in the original
            vowels.extend(v)
            ends.append(len(vowels) - 1)
            kept.append(w)
    lengths = []
    for j in range(1, len(kept)):
        best = 0
        for i in range(max(0, j - lookback), j):
            if kept[i] == kept[j]:
                continue
            p1, p2, n = ends[i], ends[j], 0
            while p1 - n >= 0 and p2 - n > p1 and vowels[p1 - n] == vowels[p2 - n]:
                n += 1
            if n > 1:
                best = max(best, n)
        lengths.append(best)
    return float(np.mean(lengths)) if lengths else 0.0


def end_rhyme_rate(text: str) -> float:
    """Share of lines (after the first) whose last word rhymes with the last word of one of the two lines before.

    Two different words rhyme when their vowels from the stressed one on are the same ("later" / "greater",
    also the slant "cash" / "bad"): the consonants are ignored, as in rap's rhymes.
    """
    ends = [line[-1] for line in _unique_lines(text)]
    if len(ends) < 2:
        return 0.0
    hits = sum(any(rhymes(ends[i], ends[k]) for i in range(max(0, k - 2), k)) for k in range(1, len(ends)))
    return hits / (len(ends) - 1)


def distinct_n(tokens: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams (Li et al. 2016): 1.0 for no repetition, towards 0 for loops."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(text: str) -> float:
    """Share of lines that repeat an earlier line of the same text word for word."""
    lines = [" ".join(words(line)) for line in lyric_lines(text)]
    lines = [line for line in lines if line]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


@dataclass(frozen=True)
class Craft:
    rhyme_density: float
    end_rhyme_rate: float
    distinct_1: float
    distinct_2: float
    repetition_rate: float
    words_per_line: float
    syllables_per_line: float


def craft(text: str) -> Craft:
    lines = [words(line) for line in lyric_lines(text)]
    lines = [line for line in lines if line]
    tokens = [w for line in lines for w in line]
    syllables = [sum(pronunciation(w).syllables for w in line) for line in lines]
    return Craft(
        rhyme_density=rhyme_density(text),
        end_rhyme_rate=end_rhyme_rate(text),
        distinct_1=distinct_n(tokens, 1),
        distinct_2=distinct_n(tokens, 2),
        repetition_rate=repetition_rate(text),
        words_per_line=len(tokens) / len(lines) if lines else 0.0,
        syllables_per_line=float(np.mean(syllables)) if syllables else 0.0,
    )


def mean_craft(texts: Sequence[str]) -> dict[str, float]:
    """Each craft figure averaged over texts (texts are scored one by one, so they should be of equal length)."""
    scores = [asdict(craft(t)) for t in texts]
    return {k: float(np.mean([s[k] for s in scores])) if scores else 0.0 for k in Craft.__dataclass_fields__}
