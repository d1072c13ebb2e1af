"""Originality: how much of a generation is copied verbatim from the training text.

The training text's word n-grams (8 words by default) are hashed to 64 bits and kept in one sorted numpy array;
a generation's n-grams are looked up by binary search. A run of overlapping n-grams that are all found is a copied
span (two training passages that happen to share 7 words could join into one span: rare, and a copy anyway);
a line all of whose words lie in copied n-grams is flagged as copied. N-grams never cross song boundaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rapgpt.errors import DataError
from rapgpt.evaluate.text import lyric_lines, words
from rapgpt.fileio import atomic_write

NGRAM = 8
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd, so each word's position changes the hash differently


_word_values: dict[str, int] = {}  # memo: a corpus has a few hundred thousand distinct words


def word_hashes(tokens: list[str]) -> np.ndarray:
    """A stable 64-bit value per word (the same in every process, unlike Python's `hash`)."""
    for w in set(tokens).difference(_word_values):
        _word_values[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    return np.fromiter(map(_word_values.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(values: np.ndarray, n: int) -> np.ndarray:
    """The hash of every window of `n` consecutive word values: sum of value * M^(position in the window)."""
    if len(values) < n:
        return np.zeros(0, dtype=np.uint64)
    out = np.zeros(len(values) - n + 1, dtype=np.uint64)
    for k in range(n):  # unsigned overflow wraps around, which is what the hash wants
        out = out * _MULTIPLIER + values[k : len(values) - n + 1 + k]
    return out


class NgramIndex:
    """The sorted, distinct hashes of every word n-gram of a collection of texts."""

    def __init__(self, hashes: np.ndarray, n: int = NGRAM):
        self.hashes = hashes
        self.n = n

    @classmethod
    def build(cls, texts: Iterable[str], n: int = NGRAM, progress: bool = False) -> NgramIndex:
        parts = []
        for text in tqdm(texts, desc="n-gram index", unit=" songs", disable=not progress):
            parts.append(ngram_hashes(word_hashes(words(text)), n))
        hashes = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
        return cls(hashes[np.concatenate([[True], hashes[1:] != hashes[:-1]])], n)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.hashes, hashes)
        pos[pos == len(self.hashes)] = 0
        return self.hashes[pos] == hashes if len(self.hashes) else np.zeros(len(hashes), dtype=bool)

    def __len__(self) -> int:
        return len(self.hashes)

    def save(self, path: str | Path) -> None:
        """One .npy file: the sorted hashes, then n."""

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a temporary path
                np.save(f, np.append(self.hashes, np.uint64(self.n)), allow_pickle=False)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> NgramIndex:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"n-gram index {path} is unreadable ({e}): delete it and it is rebuilt") from e
        return cls(data[:-1], int(data[-1]))


@dataclass(frozen=True)
class Originality:
    ngram_share: float  # share of the text's word n-grams found in the training text
    longest_copy_words: int  # length in words of the longest span copied verbatim (0 when none)
    longest_copy: str
    copied_lines: list[str] = field(default_factory=list)


def originality(text: str, index: NgramIndex) -> Originality:
    lines = [words(line) for line in lyric_lines(text)]
    tokens = [w for line in lines for w in line]
    found = index.contains(ngram_hashes(word_hashes(tokens), index.n))
    if not found.any():
        return Originality(0.0, 0, "")
    covered = np.zeros(len(tokens), dtype=bool)
    for i in np.flatnonzero(found):
        covered[i : i + index.n] = True
    # The longest run of consecutive found n-grams: a run of r n-grams spans r + n - 1 words.
    edges = np.diff(np.concatenate([[0], found.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(stops - starts))
    first, last = starts[longest], stops[longest] - 1 + index.n
    copied, offset = [], 0
    for line, ws in zip(lyric_lines(text), lines):
        if ws and covered[offset : offset + len(ws)].all():
            copied.append(line)
        offset += len(ws)
    return Originality(float(found.mean()), int(last - first), " ".join(tokens[first:last]), copied)
