"""Train/validation split by song, never by line or window, so that no song's text is on both sides.

Each song's side is decided by the song alone: a hash of its normalised text (the dedupe key: its words,
lower-cased, without punctuation), salted with the seed, is read as a number in [0, 1), and the song goes to
validation when that number is below the validation share. So a dataset prepared from a subset of a corpus
(`--artist X`, `--exclude-artist Y`, fewer sources) puts every song on the side the full corpus puts it, and
the validation rows of an artist cannot hold songs that a model trained on the full corpus has seen. Songs with
the same text share the hash, so even with deduplication switched off an exact duplicate cannot leak from
training into validation. The artist and title are left out of the hash on purpose: the same text under two
titles or two artists (a feature on both artists' albums) must land on one side.

The validation share is then the requested fraction on average, not exactly. Two corrections keep both sides
non-empty when the fraction asks for validation and the corpus has two different songs or more: if no song falls
below the share, the song with the lowest number goes to validation; if every song does, the one with the highest
number goes to training. Only these corrections depend on the other songs, and only in corpora small enough to
trigger them.

A corpus of one song cannot be split by song; `prepare` then cuts it into chunks at blank lines
(`chunk_at_blank_lines`) and splits the chunks by the same rule, each chunk whole on one side.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from rapgpt.errors import ConfigError

_SCALE = float(2**64)
# The fallback's chunk length, in words: about one song (rap-genius-35 averages some 550 words a song).
CHUNK_WORDS = 400
STANZA_BREAK = re.compile(r"\n[ \t]*\n")


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}")


def split_scores(keys: Sequence[bytes], seed: int) -> np.ndarray:
    """Each key's stable number in [0, 1): the first 8 bytes of its BLAKE2b hash salted with the seed."""
    salt = hashlib.blake2b(f"rapgpt-split:{seed}".encode()).digest()
    digests = b"".join(hashlib.blake2b(key, digest_size=8, key=salt).digest() for key in keys)
    return np.frombuffer(digests, dtype="<u8").astype(np.float64) / _SCALE


def assign_splits(keys: Sequence[bytes], val_fraction: float, seed: int) -> np.ndarray:
    """A boolean array, True where song i goes to validation (see the module's docstring for the rule)."""
    check_val_fraction(val_fraction)
    scores = split_scores(keys, seed)
    is_val = scores < val_fraction
    if val_fraction == 0.0 or len(set(keys)) < 2:
        return np.zeros(len(keys), dtype=bool)
    if not is_val.any():
        is_val = scores == scores.min()
    elif is_val.all():
        is_val = scores != scores.max()
    return is_val


def chunk_at_blank_lines(text: str, words: int = CHUNK_WORDS) -> list[str]:
    """`text` cut at blank lines into chunks of consecutive stanzas, each of at least `words` words (or half the
    text, when it is shorter than two chunks); the last stanzas join the last chunk rather than stand short."""
    stanzas = [s for s in STANZA_BREAK.split(text) if s.strip()]
    target = min(words, sum(len(s.split()) for s in stanzas) // 2)
    chunks: list[list[str]] = []
    current: list[str] = []
    length = 0
    for stanza in stanzas:
        current.append(stanza)
        length += len(stanza.split())
        if length >= target:
            chunks.append(current)
            current, length = [], 0
    if current:
        if chunks:
            chunks[-1] += current
        else:
            chunks.append(current)
    return ["\n\n".join(chunk) for chunk in chunks]
