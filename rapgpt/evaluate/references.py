"""The real songs that generations are measured against: the target artist's and everyone else's.

Songs are cut into chunks of the same number of lines as the generations, and split by song (never by chunk) into
a part the style classifier learns from and a held-out part that calibrates every figure, so that no held-out
chunk shares a song with a training chunk. Songs that appear twice (the same title on two albums) fall on the same
side, and a chunk seen before is dropped.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapgpt.data.dataset import TokenDataset
from rapgpt.errors import DataError
from rapgpt.evaluate.text import chunks

HELDOUT_SHARE = 0.2  # of each artist's songs, held out from the style classifier to calibrate every figure


@dataclass(frozen=True)
class Song:
    artist: str
    title: str
    text: str


def dataset_songs(dataset: TokenDataset, split: str | None = None) -> list[Song]:
    """Every song of a prepared dataset (or of one split), decoded with the dataset's tokenizer."""
    tokens = {s: dataset.tokens(s) for s in ("train", "val")}
    return [
        Song(s.artist, s.title, dataset.tokenizer.decode(tokens[s.split][s.start : s.end].tolist()))
        for s in dataset.songs(split)
    ]


@dataclass(frozen=True)
class References:
    artist: str
    chunk_lines: int
    target_train: list[str]
    target_heldout: list[str]
    other_train: list[str]
    other_heldout: list[str]


def is_heldout(song: Song, share: float) -> bool:
    """A stable coin per song, keyed on artist and title so that a song's duplicates land together."""
    key = f"{song.artist}\x00{re.sub(r'[^a-z0-9]+', '', song.title.lower())}"
    return zlib.crc32(key.encode()) % 10_000 < share * 10_000


def require_artist(artists: Iterable[str], artist: str) -> None:
    names = sorted(set(artists))
    if artist not in names:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise DataError(f"no songs by {artist!r} in the reference data (names are case-sensitive); artists: {shown}")


def _spread(by_artist: dict[str, list[str]], limit: int, rng: random.Random) -> list[str]:
    """Up to `limit` chunks taken in turn from each artist, so that no prolific artist dominates."""
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_artist.items())]
    out: list[str] = []
    while len(out) < limit and any(pools):
        for pool in pools:
            if pool and len(out) < limit:
                out.append(pool.pop())
    return out


def build_references(
    songs: Sequence[Song],
    artist: str,
    chunk_lines: int = 8,
    heldout_share: float = HELDOUT_SHARE,
    max_train: int = 600,
    max_heldout: int = 150,
    seed: int = 0,
) -> References:
    """Chunks of real songs: at most `max_train` / `max_heldout` per side for the target and for the others."""
    require_artist({s.artist for s in songs}, artist)
    seen: set[str] = set()
    groups: dict[tuple[bool, bool], dict[str, list[str]]] = {}  # (is target, is held out) -> artist -> chunks
    for song in sorted(songs, key=lambda s: is_heldout(s, heldout_share)):  # training side first: it keeps dups
        key = (song.artist == artist, is_heldout(song, heldout_share))
        for chunk in chunks(song.text, chunk_lines):
            if chunk not in seen:
                seen.add(chunk)
                groups.setdefault(key, {}).setdefault(song.artist, []).append(chunk)
    rng = random.Random(seed)
    refs = References(
        artist,
        chunk_lines,
        target_train=_spread(groups.get((True, False), {}), max_train, rng),
        target_heldout=_spread(groups.get((True, True), {}), max_heldout, rng),
        other_train=_spread(groups.get((False, False), {}), max_train, rng),
        other_heldout=_spread(groups.get((False, True), {}), max_heldout, rng),
    )
    for name in ("target_train", "target_heldout", "other_train", "other_heldout"):
        if len(getattr(refs, name)) < 2:
            who = artist if name.startswith("target") else "the other artists"
            raise DataError(
                f"too few {chunk_lines}-line chunks of {who}'s songs for {name.replace('_', ' ')} "
                f"({len(getattr(refs, name))}): the style measures need more songs by {who} in the reference data"
            )
    return refs
