"""How words sound at their end: the one rhyme module behind evaluation (rhyme density, end rhymes) and writing
(scoring candidate lines against a rhyme scheme, colouring rhymes in the studio).

Phonemes come from CMUdict (through the `pronouncing` package); a word it lacks is tried in its spelled-out form
("gettin'" -> "getting"), then read from its spelling with a small letters-to-sound table. As in Malmi et al.'s
Raplyzer, the unstressed schwa (AH0) is left out of the rhyming vowels (it rhymes with any vowel) and close vowels
are merged (AO with AA, IH with IY, UH with UW), so that slant rhymes count.

Three kinds of rhyme, from strongest to weakest, between two different words:
    perfect   the same sounds from the last stressed vowel to the end ("night" / "light");
    slant     the same vowels from the last stressed vowel on, consonants aside ("cash" / "bad");
and, over the ends of two lines, a multi-syllable rhyme: the number of vowels that match counting back from the
line ends, across word boundaries ("holding the mic" / "folding the night" match on OW IY AY).
A word never rhymes with itself, however it is spelt ("gettin'" / "getting").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pronouncing

from rapgpt.evaluate.text import WORD

VOWEL_DIGRAPHS = {
    "ee": "IY", "ea": "IY", "ie": "IY", "ey": "IY", "ei": "EY", "ai": "EY", "ay": "EY", "oa": "OW", "oe": "OW",
    "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY", "au": "AO", "aw": "AO", "ue": "UW", "ew": "UW",
}  # fmt: skip
SHORT_VOWELS = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH", "y": "IY"}
MERGED = {"AO": "AA", "IH": "IY", "UH": "UW"}  # close vowels that rappers rhyme together
LONG_VOWELS = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW", "y": "AY"}  # before a silent final e
VOWEL_RUN = re.compile(r"[aeiou]+[wy]?|(?<=[^aeiou])y")  # "aw", "ey": a w or y closing a vowel is part of it
# Consonant letters after the last vowel of a spelled word, as ARPAbet (longest spelling first).
CODA_SPELLINGS = {
    "tch": ("CH",), "ck": ("K",), "ng": ("NG",), "sh": ("SH",), "ch": ("CH",), "th": ("TH",), "ph": ("F",),
    "gh": (), "x": ("K", "S"), "c": ("K",), "q": ("K",), "j": ("JH",), "y": (), "w": (), "h": (),
}  # fmt: skip
CODA_LETTER = re.compile("|".join(sorted(CODA_SPELLINGS, key=len, reverse=True)) + "|[a-z]")

# Scores of `line_rhyme`: a perfect end rhyme counts more than a slant one, and each further matching vowel of a
# multi-syllable rhyme adds a little, up to a few.
PERFECT, SLANT, PER_EXTRA_VOWEL, MAX_EXTRA_VOWELS = 1.0, 0.7, 0.15, 3


@dataclass(frozen=True)
class Pronunciation:
    vowels: tuple[str, ...]  # the vowels that rhyme: ARPAbet without stress marks, schwa dropped, close ones merged
    stressed: int  # index into `vowels` of the last primary-stressed vowel (where an end rhyme starts)
    syllables: int
    coda: tuple[str, ...] = ()  # the consonants after the last vowel

    @property
    def rhyme(self) -> tuple[str, ...]:
        """The slant-rhyme key: the vowels from the stressed one on."""
        return self.vowels[self.stressed :]

    @property
    def perfect(self) -> tuple[str, ...]:
        """The perfect-rhyme key: the rhyming vowels and the final consonants."""
        return (*self.rhyme, *self.coda) if self.rhyme else ()


def _from_phones(phones: str) -> Pronunciation:
    parts = phones.split()
    syllables = [p for p in parts if p[-1].isdigit()]
    vowels = [p for p in syllables if p != "AH0"]
    stresses = [i for i, p in enumerate(vowels) if p[-1] == "1"] or [len(vowels) - 1]
    last_vowel = max((i for i, p in enumerate(parts) if p[-1].isdigit()), default=-1)
    return Pronunciation(tuple(MERGED.get(p[:-1], p[:-1]) for p in vowels), max(stresses[-1], 0), len(syllables),
                         tuple(parts[last_vowel + 1 :]))


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
    tail = letters[runs[-1].end() :] if runs else ""
    coda = tuple(p for m in CODA_LETTER.finditer(tail) for p in CODA_SPELLINGS.get(m.group(), (m.group().upper(),)))
    return Pronunciation(tuple(MERGED.get(v, v) for v in vowels), 0, len(vowels), coda)


def spelled_out(word: str) -> str:
    """The dictionary spelling of a slang one: quotes stripped, a dropped g put back ("gettin'" -> "getting")."""
    if word.endswith("in'"):
        return word.strip("'") + "g"
    return re.sub(r"(?<=[^aeiou'])in$", "ing", word.strip("'"))  # "gettin", not "rain"


@functools.lru_cache(maxsize=2**17)  # bounded: a server reads whatever words its clients send
def pronunciation(word: str) -> Pronunciation:
    """The sounds of a lower-case word: CMUdict's first pronunciation, else a guess from its spelling."""
    bare = word.strip("'")
    candidates = [word, bare, spelled_out(word), bare.replace("'", "")]
    if word.endswith("in'"):  # a dropped g: read as the full word, so that "gettin'" sounds like "getting"
        candidates.insert(0, candidates.pop(2))
    for candidate in candidates:
        phones = pronouncing.phones_for_word(candidate)
        if phones:
            return _from_phones(phones[0])
    return _from_spelling(bare)


def same_word(a: str, b: str) -> bool:
    """Whether two lower-case words are one word spelt two ways ("gettin'" and "getting")."""
    return spelled_out(a).replace("'", "") == spelled_out(b).replace("'", "")


def perfect_rhyme(a: str, b: str) -> bool:
    """Same sounds from the last stressed vowel to the end, in two different words."""
    key = pronunciation(a).perfect
    return bool(key) and key == pronunciation(b).perfect and not same_word(a, b)


def rhymes(a: str, b: str) -> bool:
    """A perfect or slant rhyme: the same vowels from the last stressed vowel on, in two different words."""
    key = pronunciation(a).rhyme
    return bool(key) and key == pronunciation(b).rhyme and not same_word(a, b)


def matching_vowels(a: Sequence[str], b: Sequence[str]) -> int:
    """How many vowels match counting back from the ends of two word sequences (a multi-syllable rhyme's
    length); 0 when their last words are the same word."""
    if not a or not b or same_word(a[-1], b[-1]):
        return 0
    va = [v for w in a for v in pronunciation(w).vowels]
    vb = [v for w in b for v in pronunciation(w).vowels]
    n = 0
    while n < min(len(va), len(vb)) and va[-1 - n] == vb[-1 - n]:
        n += 1
    return n


def line_rhyme(a: Sequence[str], b: Sequence[str]) -> float:
    """How well the ends of two lines (their lower-case words) rhyme: 0 for no rhyme, SLANT or PERFECT for their
    last words, plus PER_EXTRA_VOWEL for each further vowel of a multi-syllable rhyme."""
    if not a or not b or not rhymes(a[-1], b[-1]):
        return 0.0
    base = PERFECT if perfect_rhyme(a[-1], b[-1]) else SLANT
    extra = matching_vowels(a, b) - len(pronunciation(b[-1]).rhyme)
    return base + PER_EXTRA_VOWEL * min(max(extra, 0), MAX_EXTRA_VOWELS)


@dataclass(frozen=True)
class RhymeMark:
    """A line-ending word that rhymes with another line end near it: characters [start, end) of the text, and a
    group shared by the words that rhyme together."""

    start: int
    end: int
    group: int


NEAR_LINES = 4  # a line end is marked when it rhymes with one of this many lines before or after it


def end_rhyme_marks(text: str, near: int = NEAR_LINES) -> list[RhymeMark]:
    """The line ends of `text` that rhyme with a line end at most `near` lines away, so that a reader sees the
    scheme: words with the same rhyming vowels share a group, numbered in order of appearance."""
    ends: list[tuple[int, int, str]] = []
    offset = 0
    for line in text.lower().splitlines(keepends=True):
        found = list(WORD.finditer(line))
        if found:
            ends.append((offset + found[-1].start(), offset + found[-1].end(), found[-1].group()))
        offset += len(line)
    marked: set[int] = set()
    for k in range(len(ends)):
        for j in range(max(0, k - near), k):
            if rhymes(ends[j][2], ends[k][2]):
                marked.update((j, k))
    groups: dict[tuple[str, ...], int] = {}
    marks = []
    for i in sorted(marked):
        start, end, word = ends[i]
        group = groups.setdefault(pronunciation(word).rhyme, len(groups))
        marks.append(RhymeMark(start, end, group))
    return marks
