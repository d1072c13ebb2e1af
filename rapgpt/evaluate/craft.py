"""Lyric craft: rhyme density, end rhymes, lexical variety, repetition and line shape.

Rhyme density follows Malmi et al., "DopeLearning" (KDD 2016): the lyric becomes a sequence of vowel phonemes
(consonants are ignored, since rappers rhyme on vowels); for each word, the rhyme length is the longest run of
vowels ending at that word which also ends at one of the previous 15 words (a different word, not
overlapping), where a run of one vowel does not count; rhyme density is the mean over the words. Repeated lines
are dropped first, so that a chorus does not rhyme with itself.

Phonemes come from CMUdict (through the `pronouncing` package); a word it lacks is tried in its spelled-out form
("gettin'" -> "getting"), then read from its spelling with a small letters-to-vowel table. As in the authors'
Raplyzer, the unstressed schwa (AH0) is left out of the rhyme (it rhymes with any vowel) and close vowels are
merged (AO with AA, IH with IY, UH with UW), so that slant rhymes count. Figures are on CMUdict's phonemes, not
the eSpeak transcription of the paper, so compare them with the real songs' figures in the same report.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pronouncing

from rapgpt.evaluate.text import lyric_lines, words

LOOKBACK = 15  # previous words searched for a rhyme: about a line and a half (the authors' Raplyzer uses 10)
VOWEL_DIGRAPHS = {
    "ee": "IY", "ea": "IY", "ie": "IY", "ey": "IY", "ei": "EY", "ai": "EY", "ay": "EY", "oa": "OW", "oe": "OW",
    "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY", "au": "AO", "aw": "AO", "ue": "UW", "ew": "UW",
}  # fmt: skip
SHORT_VOWELS = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH", "y": "IY"}
MERGED = {"AO": "AA", "IH": "IY", "UH": "UW"}  # close vowels that rappers rhyme together
LONG_VOWELS = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW", "y": "AY"}  # before a silent final e
VOWEL_RUN = re.compile(r"[aeiou]+[wy]?|(?<=[^aeiou])y")  # "aw", "ey": a w or y closing a vowel is part of it


@dataclass(frozen=True)
class Pronunciation:
    vowels: tuple[str, ...]  # the vowels that rhyme: ARPAbet without stress marks, schwa dropped, close ones merged
    stressed: int  # index into `vowels` of the last primary-stressed vowel (where an end rhyme starts)
    syllables: int

    @property
    def rhyme(self) -> tuple[str, ...]:
        return self.vowels[self.stressed :]


def _from_phones(phones: str) -> Pronunciation:
    syllables = [p for p in phones.split() if p[-1].isdigit()]
    vowels = [p for p in syllables if p != "AH0"]
    stresses = [i for i, p in enumerate(vowels) if p[-1] == "1"] or [len(vowels) - 1]
    return Pronunciation(tuple(MERGED.get(p[:-1], p[:-1]) for p in vowels), max(stresses[-1], 0), len(syllables))


def _from_spelling(word: str) -> Pronunciation:
    """Vowels read from the letters: a rough guess for slang and names, right for the common patterns."""
    letters = re.sub(r"[^a-z]", "", word)
    magic_e = len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiouy" and letters[-3] in "aeiouy"
    if magic_e:
        letters = letters[:-1]
    runs = list(VOWEL_RUN.finditer(letters))
    vowels = []
    for k, run in enumerate(runs):
        text = run.group()
        if text[:2] in VOWEL_DIGRAPHS:
            vowels.append(VOWEL_DIGRAPHS[text[:2]])
        elif magic_e and k == len(runs) - 1 and len(text) == 1:
            vowels.append(LONG_VOWELS[text])
        else:
            vowels.append(SHORT_VOWELS[text[0]])
    return Pronunciation(tuple(MERGED.get(v, v) for v in vowels), 0, len(vowels))


@functools.cache
def pronunciation(word: str) -> Pronunciation:
    """The vowel phonemes of a lower-case word: CMUdict's first pronunciation, else a guess from its spelling."""
    bare = word.strip("'")
    for candidate in (word, bare, re.sub(r"in'?$", "ing", word), bare.replace("'", "")):
        phones = pronouncing.phones_for_word(candidate)
        if phones:
            return _from_phones(phones[0])
    return _from_spelling(bare)


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
    rhymes = 0
    for k in range(1, len(ends)):
        tail = pronunciation(ends[k]).rhyme
        rhymes += any(
            ends[i] != ends[k] and tail and pronunciation(ends[i]).rhyme == tail for i in range(max(0, k - 2), k)
        )
    return rhymes / (len(ends) - 1)


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
