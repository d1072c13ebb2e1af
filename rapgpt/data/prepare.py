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
from rapgpt.data.lyric_bpe import DEFAULT_VOCAB_SIZE, LyricBPETokenizer, check_vocab_size
from rapgpt.data.readers import Fields, Song, read_sources
from rapgpt.data.split import assign_splits, check_val_fraction, chunk_at_blank_lines
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
    records_field: str | None = None,
    separator: str | None = None,
    val_fraction: float = PrepareConfig.val_fraction,
    seed: int = PrepareConfig.seed,
    artists: Sequence[str] = (),
    exclude_artists: Sequence[str] = (),
    vocab_from: str | Path | None = None,
    vocab_size: int | None = None,
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
    tokenizer "bpe": a byte-level BPE of `vocab_size` ids (default `lyric_bpe.DEFAULT_VOCAB_SIZE`) trained on the
    training split.
    """
    out = check_output_dir(out, force)
    clean = clean or CleanOptions()
    check_val_fraction(val_fraction)
    base = _base_tokenizer(vocab_from, tokenizer)
    kind = base.kind if base else tokenizer or "char"
    if kind not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}: choose one of {', '.join(TOKENIZERS)}")
    if vocab_size is not None and (kind != "bpe" or base):
        raise ConfigError("--vocab-size applies only to a new BPE: use it with --tokenizer bpe and no --vocab-from")
    if kind == "bpe":
        check_vocab_size(vocab_size or DEFAULT_VOCAB_SIZE)
    if kind == "gpt2":
        base = base or GPT2Tokenizer()  # built before the workers start, so that they inherit it
    sources = list(sources) or [rapgpt.data.sample_corpus_dir()]
    skips: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    found: dict[str, str] = {}
    fields = Fields(text_field, artist_field, title_field, records_field)
    select = ArtistFilter(artists, exclude_artists)
    songs = select(read_sources(sources, format, fields, separator, skips, found), drops)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.spool-", dir=out.parent) as tmp, Workers(workers) as pool:
        spool = Path(tmp) / "songs.jsonl"
        kept = KeptSongs()
        with open(spool, "w", encoding="utf-8") as f:
            for song, cleaned in clean_songs(songs, clean, pool, deduplicator(clean), drops, progress):
                kept.add(f, song.artist, song.title, cleaned)
        select.check_found()
        check_not_empty(len(kept.keys), drops)
        extra: dict[str, Any] = {"sources": found, "skipped": dict(skips), "dropped": dict(drops)}
        if val_fraction > 0 and len(set(kept.keys)) < 2:
            kept = _cut_into_chunks(spool, kept)
            extra["split_fallback"] = (
                f"a single song: cut into {len(kept.keys):,} chunks at blank lines, each assigned to a split whole "
                "(separate the songs with --separator to split by song)"
            )
        is_val = assign_splits(kept.keys, val_fraction, seed)
        if base is None and kind == "bpe":
            base = LyricBPETokenizer.train(_training_texts(spool, is_val), vocab_size or DEFAULT_VOCAB_SIZE)
        tok = base or CharTokenizer.from_texts(chars for chars, val in zip(kept.charsets, is_val) if not val)
        with DatasetWriter(out, tok, force) as writer:
            stats, unknown = _tokenize_pass(spool, kept, is_val, tok, pool, writer, progress)
            if isinstance(tok, CharTokenizer):
                chars = "".join(sorted(set().union(*kept.charsets) - set(tok.chars)))
                extra["unknown_chars"] = {"count": unknown, "chars": chars}
            options = {
                "sources": [str(s) for s in sources],
                "format": format,
                "fields": {"text": text_field, "artist": artist_field, "title": title_field, "records": records_field},
                "separator": separator,
                "tokenizer": kind,
                "val_fraction": val_fraction,
                "seed": seed,
                "artists": list(artists),
                "exclude_artists": list(exclude_artists),
                "vocab_from": str(vocab_from) if vocab_from else None,
                "vocab_size": tok.vocab_size,
                "clean": asdict(clean),
            }
            return writer.commit(stats.to_json(**extra), options)


def artist_key(name: str) -> str:
    """Artist names compare ignoring case, spaces and punctuation: "Lil Wayne" = "lil-wayne" = "LIL WAYNE"."""
    return re.sub(r"[\W_]+", "", name.casefold())


class ArtistFilter:
    """`--artist` / `--exclude-artist`: passes the selected songs on and counts the others in `drops`."""

    def __init__(self, keep: Iterable[str], exclude: Iterable[str]):
        self.keep = {artist_key(a): a for a in keep}
        self.exclude = {artist_key(a) for a in exclude}
        self.seen: Counter[str] = Counter()
        self.matched: set[str] = set()

    def __call__(self, songs: Iterable[Song], drops: Counter) -> Iterator[Song]:
        for song in songs:
            key = artist_key(song.artist)
            self.seen[song.artist] += 1
            if key in self.exclude:
                drops["excluded artist (--exclude-artist)"] += 1
            elif self.keep and key not in self.keep:
                drops["other artist (--artist)"] += 1
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


@dataclass(frozen=True)
class Cleaned:
    text: str
    words: int
    fingerprint: Fingerprint

    @classmethod
    def of(cls, text: str) -> Cleaned:
        return cls(text, count_words(text), fingerprint(text))


@dataclass
class KeptSongs:
    """What pass one remembers of each song it kept, in spool order."""

    keys: list[bytes] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    charsets: list[str] = field(default_factory=list)

    def add(self, spool: TextIO, artist: str, title: str, song: Cleaned) -> None:
        """Spool the song's cleaned text and remember its facts."""
        spool.write(json.dumps({"artist": artist, "title": title, "lyrics": song.text}) + "\n")
        self.keys.append(song.fingerprint.key)
        self.words.append(song.words)
        self.chars.append(len(song.text))
        self.charsets.append("".join(set(song.text)))


def clean_batch(batch: list[tuple[str, str]], options: CleanOptions) -> list[Cleaned | str]:
    """Worker: clean (title, lyrics) pairs; a string result is the reason the song is dropped."""
    results: list[Cleaned | str] = []
    for title, lyrics in batch:
        song = Cleaned.of(clean_lyrics(lyrics, options, title))
        results.append(song if song.words >= options.min_words else f"too short (< {options.min_words} words)")
    return results


def clean_songs(
    songs: Iterable[Song],
    options: CleanOptions,
    workers: Workers,
    dedupe: Deduplicator,
    drops: Counter,
    progress: bool,
) -> Iterator[tuple[Song, Cleaned]]:
    """Pass one: each song that survives cleaning and deduplication, with its cleaned text; the others are
    counted in `drops` by reason."""
    work = functools.partial(clean_batch, options=options)
    with tqdm(desc="cleaning", unit=" songs", disable=not progress) as bar:
        for batch, results in workers.map(
            work, batches(songs, BATCH_SONGS), lambda b: [(s.title, s.lyrics) for s in b]
        ):
            for song, result in zip(batch, results):
                reason = result if isinstance(result, str) else dedupe.check(result.fingerprint)
                if reason:
                    drops[reason] += 1
                else:
                    yield song, result
            bar.update(len(batch))


def deduplicator(options: CleanOptions) -> Deduplicator:
    return Deduplicator(options.dedupe, options.near_dedupe, options.near_threshold)


def check_not_empty(kept: int, drops: Counter) -> None:
    if not kept:
        raise DataError(
            f"the corpus is empty after cleaning: {sum(drops.values()):,} songs read, "
            + ", ".join(f"{n:,} {reason}" for reason, n in drops.items())
            + " (lower --min-words, check --artist / --exclude-artist, or add sources)"
        )


def _cut_into_chunks(spool: Path, kept: KeptSongs) -> KeptSongs:
    """The split fallback for a corpus of one song (a whole catalogue in one file without song separators):
    the spool is rewritten as that song's chunks at blank lines (see `chunk_at_blank_lines`), which the split then
    assigns as units. A song without a blank line to cut at is refused."""
    records = [json.loads(line) for line in spool.read_text(encoding="utf-8").splitlines()]
    chunked = KeptSongs()
    with open(spool, "w", encoding="utf-8") as f:
        for record in records:
            for i, chunk in enumerate(chunk_at_blank_lines(record["lyrics"]), 1):
                chunked.add(f, record["artist"], f"{record['title']} (part {i})", Cleaned.of(chunk))
    if len(set(chunked.keys)) < 2:
        raise DataError(
            f"the corpus is a single song after cleaning ({sum(kept.words):,} words, without a blank line to cut it "
            "at), too few for a validation split: if the file holds several songs, pass --separator TEXT (the text "
            "between them; by default 2+ blank lines), add sources, or pass --val-fraction 0"
        )
    return chunked


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


def _training_texts(spool: Path, is_val: np.ndarray) -> Iterator[str]:
    """The spooled lyrics of the training songs, for learning a BPE."""
    with open(spool, encoding="utf-8") as f:
        for line, val in zip(f, is_val):
            if not val:
                yield json.loads(line)["lyrics"]


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
