"""`rapgpt prepare --dry-run`: what `prepare` would keep of each source, shown before anything is written.

The sources are read, filtered by artist, cleaned and deduplicated by the same functions as `prepare`, in the same
order and with one deduplicator across all sources, so a song dropped as a duplicate of an earlier source's song is
counted against the source it came from. Per source the report gives how its files were read (format, and where
in a JSON file the songs were found), the songs kept of those read, their artists and words, what was skipped or
dropped and why, and three cleaned excerpts, so that a person sees what the cleaner did to their corpus before
training on it. Nothing is tokenized or written. The excerpts are the kept songs with the lowest hash of their
text: a fixed sample spread over the source rather than its first songs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rapgpt.data
from rapgpt.data.clean import CleanOptions
from rapgpt.data.config import PrepareConfig
from rapgpt.data.prepare import ArtistFilter, Cleaned, check_not_empty, clean_songs, deduplicator
from rapgpt.data.readers import Fields, Song, read_sources
from rapgpt.data.split import assign_splits, check_val_fraction, split_scores
from rapgpt.data.stats import format_counts, format_sources
from rapgpt.data.workers import Workers

EXCERPTS = 3
EXCERPT_LINES = 6
EXCERPT_WIDTH = 100


@dataclass(frozen=True)
class Excerpt:
    artist: str
    title: str
    text: str  # the first lines of the cleaned song


@dataclass
class SourceReport:
    """What a dry run found in one source (a file or a folder, as given on the command line)."""

    source: str
    found: dict[str, str] = field(default_factory=dict)
    skips: Counter = field(default_factory=Counter)
    drops: Counter = field(default_factory=Counter)
    kept: int = 0
    words: int = 0
    artists: set[str] = field(default_factory=set)
    sample: list[tuple[float, int, Excerpt]] = field(default_factory=list)  # a max-heap on the negated rank

    def add(self, song: Song, cleaned: Cleaned, rank: float) -> None:
        self.kept += 1
        self.words += cleaned.words
        self.artists.add(song.artist)
        if len(self.sample) < EXCERPTS or -self.sample[0][0] > rank:
            lines = cleaned.text.split("\n")[:EXCERPT_LINES]
            excerpt = Excerpt(song.artist, song.title, "\n".join(line[:EXCERPT_WIDTH] for line in lines))
            if len(self.sample) < EXCERPTS:
                heapq.heappush(self.sample, (-rank, self.kept, excerpt))
            else:
                heapq.heapreplace(self.sample, (-rank, self.kept, excerpt))

    @property
    def excerpts(self) -> list[Excerpt]:
        return [excerpt for _, _, excerpt in sorted(self.sample, reverse=True)]


@dataclass
class DryRun:
    sources: list[SourceReport]
    keys: list[bytes]  # the dedupe keys of every kept song, in order, for the split
    val_fraction: float
    seed: int


def dry_run(
    sources: Sequence[str | Path] = (),
    config: PrepareConfig | None = None,
    clean: CleanOptions | None = None,
    progress: bool = True,
) -> DryRun:
    """Read and clean `sources` as `prepare` would with these settings, returning what it would keep of each."""
    config, clean = config or PrepareConfig(), clean or CleanOptions()
    check_val_fraction(config.val_fraction)
    sources = list(sources) or [rapgpt.data.sample_corpus_dir()]
    fields = Fields(config.text_field, config.artist_field, config.title_field, config.records_field)
    select = ArtistFilter(config.artists, config.exclude_artists)
    dedupe = deduplicator(clean)
    reports: list[SourceReport] = []
    keys: list[bytes] = []
    with Workers(config.workers) as pool:
        for source in sources:
            report = SourceReport(str(source))
            read = read_sources([source], config.format, fields, config.separator, report.skips, report.found)
            for song, cleaned in clean_songs(select(read, report.drops), clean, pool, dedupe, report.drops, progress):
                report.add(song, cleaned, float(split_scores([cleaned.fingerprint.key], seed=0)[0]))
                keys.append(cleaned.fingerprint.key)
            reports.append(report)
    select.check_found()
    check_not_empty(len(keys), sum((r.drops for r in reports), Counter()))
    return DryRun(reports, keys, config.val_fraction, config.seed)


def format_dry_run(run: DryRun) -> str:
    """The report printed by `rapgpt prepare --dry-run`."""
    lines: list[str] = []
    for r in run.sources:
        read = r.kept + sum(r.drops.values())
        lines += [
            f"source: {r.source}",
            f"  read as: {format_sources(r.found)}",
            f"  kept: {r.kept:,} of {read:,} songs, {len(r.artists):,} artist{'' if len(r.artists) == 1 else 's'}, "
            f"{r.words:,} words",
        ]
        lines += [f"  {name}: {format_counts(counts)}" for name, counts in (("skipped", r.skips), ("dropped", r.drops))
                  if counts]  # fmt: skip
        for i, excerpt in enumerate(r.excerpts, 1):
            lines.append(f'  excerpt {i}: {excerpt.artist}, "{excerpt.title}"')
            lines += [f"    | {line}" for line in excerpt.text.split("\n")]
    lines.append(f"split: {_split_summary(run)}")
    lines.append("dry run: nothing was written")
    return "\n".join(lines)


def _split_summary(run: DryRun) -> str:
    if run.val_fraction > 0 and len(set(run.keys)) < 2:
        return (
            "a single song: prepare would cut it into chunks at blank lines, or refuse it if it has none "
            "(separate the songs with --separator to split by song)"
        )
    val = int(assign_splits(run.keys, run.val_fraction, run.seed).sum())
    return f"{len(run.keys) - val:,} songs to train, {val:,} to validation (seed {run.seed})"
