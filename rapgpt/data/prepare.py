"""`rapgpt prepare`: raw lyrics in, a dataset directory out (see `rapgpt.data.dataset` for the format).

The pipeline streams: read -> select artists -> clean -> drop short songs -> dedupe -> split -> tokenize -> write.
A character vocabulary must come from the training songs only, and which songs those are is known only once every
song has been read, cleaned and deduplicated. So there are two passes over a spool. Pass one writes each surviving
song's cleaned text to a spool file beside the output and keeps a few facts per song in memory (its dedupe key,
word and character counts, its set of characters); then the songs are split and the vocabulary built. Pass two
reads the spool back, tokenizes it and streams the tokens into a `DatasetWriter`. A spool rather than a second
read of the sources, because cleaning and deduplication then run once, and a second read would need them again
to know which songs survived.

Both passes hand batches of songs to worker processes (one per core): pass one to clean and fingerprint them,
pass two to tokenize them. At most a few batches are in flight, so memory holds the current source file's songs,
those batches and the per-song facts. The spool and the partial dataset live in hidden directories that an error
or Ctrl-C removes; the output appears only when complete.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

import rapgpt.data
from rapgpt.data.clean import CleanOptions, clean_lyrics, count_words
from rapgpt.data.config import TOKENIZERS, PrepareConfig
from rapgpt.data.dataset import DatasetWriter, TokenDataset, check_output_dir, token_dtype
from rapgpt.data.dedupe import Deduplicator, Fingerprint, fingerprint
from rapgpt.data.readers import Fields, Song, read_sources
from rapgpt.data.split import assign_splits, check_val_fraction
from rapgpt.data.stats import CorpusStats
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer, tokenizer_from_json
from rapgpt.data.workers import Workers, batches
from rapgpt.errors import ConfigError, DataError

BATCH_SONGS = 64


def prepare(
    sources: Sequence[str | Path] = (),
    out: str | Path = "data/sample",
    tokenizer: str | None = None,
    *,
    format: str = PrepareConfig.format,
    text_field: str | None = None,
    artist_field: str | None = None,
    title_field: str | None = None,
    separator: str | None = None,
    val_fraction: float = PrepareConfig.val_fraction,
    seed: int = PrepareConfig.seed,
    artists: Sequence[str] = (),
    exclude_artists: Sequence[str] = (),
    vocab_from: str | Path | None = None,
    clean: CleanOptions | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Turn lyric files into a dataset directory at `out` and return its path.

    sources: files or folders of lyrics (default: the bundled sample corpus); format: see `rapgpt.data.readers`.
    tokenizer: "char" or "gpt2" (default "char", or the `vocab_from` dataset's). artists / exclude_artists: keep
    only / leave out these artists (matched ignoring case, spaces and punctuation). vocab_from: a dataset whose
    tokenizer to reuse, as a fine-tuning set must share its base model's vocabulary. workers: processes for
    cleaning and tokenizing (default: one per core; 1 runs everything in this process).
    """
    out = check_output_dir(out, force)
    clean = clean or CleanOptions()
    check_val_fraction(val_fraction)
    base = _base_tokenizer(vocab_from, tokenizer)
    kind = base.kind if base else tokenizer or "char"
    if kind not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}: choose one of {', '.join(TOKENIZERS)}")
    if kind == "gpt2":
        base = base or GPT2Tokenizer()  # built before the workers start, so that they inherit it
    sources = list(sources) or [rapgpt.data.sample_corpus_dir()]
    skips: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    select = ArtistFilter(artists, exclude_artists, drops)
    songs = select(read_sources(sources, format, Fields(text_field, artist_field, title_field), separator, skips))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.spool-", dir=out.parent) as tmp, Workers(workers) as pool:
        spool = Path(tmp) / "songs.jsonl"
        with open(spool, "w", encoding="utf-8") as f:
            kept = _clean_pass(songs, clean, pool, f, drops, progress)
        select.check_found()
        if not kept.keys:
            read = sum(drops.values())
            raise DataError(
                f"the corpus is empty after cleaning: {read:,} songs read, "
                + ", ".join(f"{n:,} {reason}" for reason, n in drops.items())
                + " (lower --min-words, check --artist / --exclude-artist, or add sources)"
            )
        is_val = assign_splits(kept.keys, val_fraction, seed)
        tok = base or CharTokenizer.from_texts(chars for chars, val in zip(kept.charsets, is_val) if not val)
        with DatasetWriter(out, tok, force) as writer:
            stats, unknown = _tokenize_pass(spool, kept, is_val, tok, pool, writer, progress)
            extra: dict[str, Any] = {"skipped": dict(skips), "dropped": dict(drops)}
            if isinstance(tok, CharTokenizer):
                chars = "".join(sorted(set().union(*kept.charsets) - set(tok.chars)))
                extra["unknown_chars"] = {"count": unknown, "chars": chars}
            options = {
                "sources": [str(s) for s in sources],
                "format": format,
                "fields": {"text": text_field, "artist": artist_field, "title": title_field},
                "separator": separator,
                "tokenizer": kind,
                "val_fraction": val_fraction,
                "seed": seed,
                "artists": list(artists),
                "exclude_artists": list(exclude_artists),
                "vocab_from": str(vocab_from) if vocab_from else None,
                "clean": asdict(clean),
            }
            return writer.commit(stats.to_json(**extra), options)


def artist_key(name: str) -> str:
    """Artist names compare ignoring case, spaces and punctuation: "Lil Wayne" = "lil-wayne" = "LIL WAYNE"."""
    return re.sub(r"[\W_]+", "", name.casefold())


class ArtistFilter:
    """`--artist` / `--exclude-artist`: passes the selected songs on and counts the others."""

    def __init__(self, keep: Iterable[str], exclude: Iterable[str], drops: Counter):
        self.keep = {artist_key(a): a for a in keep}
        self.exclude = {artist_key(a) for a in exclude}
        self.drops = drops
        self.seen: Counter[str] = Counter()
        self.matched: set[str] = set()

    def __call__(self, songs: Iterable[Song]) -> Iterator[Song]:
        for song in songs:
            key = artist_key(song.artist)
            self.seen[song.artist] += 1
            if key in self.exclude:
                self.drops["excluded artist (--exclude-artist)"] += 1
            elif self.keep and key not in self.keep:
                self.drops["other artist (--artist)"] += 1
            else:
                self.matched.add(key)
                yield song

    def check_found(self) -> None:
        missing = [name for key, name in self.keep.items() if key not in self.matched]
        if missing:
            found = ", ".join(f"{a} ({n})" for a, n in self.seen.most_common(20))
            raise DataError(
                f"no songs by {', '.join(map(repr, missing))} in the sources (artists found: {found or 'none'}); "
                "check the spelling of --artist"
            )


@dataclass
class KeptSongs:
    """What pass one remembers of each song it kept, in spool order."""

    keys: list[bytes] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    charsets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cleaned:
    text: str
    words: int
    fingerprint: Fingerprint


def clean_batch(batch: list[tuple[str, str]], options: CleanOptions) -> list[Cleaned | str]:
    """Worker: clean (title, lyrics) pairs; a string result is the reason the song is dropped."""
    results: list[Cleaned | str] = []
    for title, lyrics in batch:
        text = clean_lyrics(lyrics, options, title)
        words = count_words(text)
        if words < options.min_words:
            results.append(f"too short (< {options.min_words} words)")
        else:
            results.append(Cleaned(text, words, fingerprint(text)))
    return results


def _clean_pass(
    songs: Iterable[Song], options: CleanOptions, workers: Workers, spool: TextIO, drops: Counter, progress: bool
) -> KeptSongs:
    kept = KeptSongs()
    dedupe = Deduplicator(options.dedupe, options.near_dedupe, options.near_threshold)
    work = functools.partial(clean_batch, options=options)
    with tqdm(desc="cleaning", unit=" songs", disable=not progress) as bar:
        for batch, results in workers.map(
            work, batches(songs, BATCH_SONGS), lambda b: [(s.title, s.lyrics) for s in b]
        ):
            for song, result in zip(batch, results):
                reason = result if isinstance(result, str) else dedupe.check(result.fingerprint)
                if reason:
                    drops[reason] += 1
                    continue
                spool.write(json.dumps({"artist": song.artist, "title": song.title, "lyrics": result.text}) + "\n")
                kept.keys.append(result.fingerprint.key)
                kept.words.append(result.words)
                kept.chars.append(len(result.text))
                kept.charsets.append("".join(set(result.text)))
            bar.update(len(batch))
    return kept


def _base_tokenizer(vocab_from: str | Path | None, tokenizer: str | None) -> Tokenizer | None:
    if vocab_from is None:
        return None
    base = TokenDataset(vocab_from).tokenizer
    if tokenizer is not None and tokenizer != base.kind:
        raise ConfigError(
            f"--tokenizer {tokenizer} conflicts with --vocab-from {vocab_from}, whose tokenizer is {base.kind!r}: "
            "drop --tokenizer (the base dataset's is used)"
        )
    return base


@functools.lru_cache(maxsize=2)
def _tokenizer(spec: str) -> Tokenizer:
    return tokenizer_from_json(json.loads(spec))


def encode_batch(texts: list[str], spec: str) -> list[np.ndarray]:
    """Worker: token ids of each text, as arrays of the dataset's dtype (cheap to send between processes)."""
    tok = _tokenizer(spec)
    dtype = token_dtype(tok.vocab_size)
    return [np.asarray(ids, dtype=dtype) for ids in tok.encode_batch(texts)]


def _tokenize_pass(
    spool: Path,
    kept: KeptSongs,
    is_val: np.ndarray,
    tok: Tokenizer,
    workers: Workers,
    writer: DatasetWriter,
    progress: bool,
) -> tuple[CorpusStats, int]:
    """Tokenize the spooled songs into the writer; returns the statistics and the count of unknown characters."""
    stats = CorpusStats()
    unknown = 0
    unknown_id = tok.unknown_id if isinstance(tok, CharTokenizer) else None
    work = functools.partial(encode_batch, spec=json.dumps(tok.to_json()))
    bar = tqdm(total=len(kept.keys), desc="tokenizing", unit=" songs", disable=not progress)
    with open(spool, encoding="utf-8") as f, bar:
        records = (json.loads(line) for line in f)
        i = 0
        for batch, arrays in workers.map(work, batches(records, BATCH_SONGS), lambda b: [r["lyrics"] for r in b]):
            for record, ids in zip(batch, arrays):
                split = "val" if is_val[i] else "train"
                writer.add_song(split, ids, record["artist"], record["title"])
                stats.add(split, record["artist"], kept.words[i], kept.chars[i], len(ids) + 1)
                if unknown_id is not None:
                    unknown += int(np.count_nonzero(ids == unknown_id))
                i += 1
            bar.update(len(batch))
    return stats, unknown
