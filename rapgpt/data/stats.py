"""Corpus statistics: songs, artists, words, characters and tokens per split, the top artists, and what was
dropped and why. Collected while a dataset is written, saved in its meta.json and printed as a table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rapgpt.data.dataset import SPLITS

COLUMNS = ("songs", "artists", "words", "chars", "tokens")


@dataclass
class SplitStats:
    songs: int = 0
    words: int = 0
    chars: int = 0
    tokens: int = 0  # including each song's end-of-text token, so it equals the length of the split's .bin
    artists: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, int]:
        return {
            "songs": self.songs,
            "artists": len(self.artists),
            "words": self.words,
            "chars": self.chars,
            "tokens": self.tokens,
        }


class CorpusStats:
    def __init__(self) -> None:
        self.splits = {split: SplitStats() for split in SPLITS}
        self.artist_songs: Counter[str] = Counter()
        self.artist_words: Counter[str] = Counter()

    def add(self, split: str, artist: str, words: int, chars: int, tokens: int) -> None:
        s = self.splits[split]
        s.songs += 1
        s.words += words
        s.chars += chars
        s.tokens += tokens
        s.artists.add(artist)
        self.artist_songs[artist] += 1
        self.artist_words[artist] += words

    def to_json(self, top: int = 10, **extra: Any) -> dict[str, Any]:
        """The statistics as saved in meta.json; `extra` (drop counts, unknown characters...) is added as is."""
        total = SplitStats(artists=set().union(*(s.artists for s in self.splits.values())))
        for s in self.splits.values():
            total.songs, total.words = total.songs + s.songs, total.words + s.words
            total.chars, total.tokens = total.chars + s.chars, total.tokens + s.tokens
        return {
            **{split: s.to_json() for split, s in self.splits.items()},
            "total": total.to_json(),
            "top_artists": [
                {"artist": a, "songs": n, "words": self.artist_words[a]} for a, n in self.artist_songs.most_common(top)
            ],
            **extra,
        }


def format_stats(stats: dict[str, Any]) -> str:
    """The statistics of a dataset's meta.json as a plain-text table, followed by the top artists and drops."""
    rows = [("", *COLUMNS)] + [(name, *(f"{stats[name][c]:,}" for c in COLUMNS)) for name in (*SPLITS, "total")]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) + 1)]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    if stats.get("top_artists"):
        lines.append(
            "top artists: "
            + ", ".join(f"{a['artist']} ({a['songs']:,} songs, {a['words']:,} words)" for a in stats["top_artists"])
        )
    if stats.get("sources"):
        lines.append(f"read: {format_sources(stats['sources'])}")
    for key in ("skipped", "dropped"):
        if stats.get(key):
            lines.append(f"{key}: {format_counts(stats[key])}")
    if stats.get("split_fallback"):
        lines.append(f"split: {stats['split_fallback']}")
    unknown = stats.get("unknown_chars")
    if unknown and unknown["count"]:
        lines.append(
            f"unknown characters: {unknown['count']:,} occurrences of {len(unknown['chars'])} characters outside "
            f"the vocabulary ({unknown['chars'][:40]!r}) were encoded as the unknown token"
        )
    return "\n".join(lines)


def format_sources(found: dict[str, str]) -> str:
    """Where the songs were found, one entry per kind of file: "genius: the 'songs' list (49 files)"."""
    kinds = Counter(found.values())
    return "; ".join(kind if n == 1 else f"{kind} ({n:,} files)" for kind, n in kinds.items())


def format_counts(counts: dict[str, int]) -> str:
    """Counts by reason: "232 too short (< 30 words), 125 exact duplicate"."""
    return ", ".join(f"{n:,} {reason}" for reason, n in counts.items())
