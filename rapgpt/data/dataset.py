"""The prepared dataset on disk: what `rapgpt prepare` writes and every later stage reads.

A dataset directory holds
    train.bin, val.bin   every song's tokens followed by the end-of-text id, flat, in `meta["dtype"]`;
    songs.jsonl          one line per song: split, start and end offsets (end excludes the end-of-text id),
                         artist and title, so that a later step can select one artist's songs;
    tokenizer.json       the tokenizer (see `rapgpt.data.tokenizer`);
    meta.json            written last: the format version, dtype, token counts, statistics and options.
It is built in a hidden temporary directory and renamed into place only when complete, so a crash never leaves a
directory that looks like a finished dataset.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

import numpy as np

from rapgpt.data.tokenizer import Tokenizer, tokenizer_from_json
from rapgpt.errors import DataError
from rapgpt.fileio import read_json

FORMAT_VERSION = 1
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SongSpan:
    split: str
    start: int
    end: int
    artist: str
    title: str


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def check_output_dir(out_dir: str | Path, force: bool) -> Path:
    """Refuse to replace an existing output unless forced (called before long work, so it fails fast)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise DataError(f"output directory already exists: {out_dir} (pass --force to replace it)")
    return out_dir


class DatasetWriter:
    """Streams songs into a new dataset directory; `commit` makes it appear atomically at `out_dir`.

    Use as a context manager: leaving the block by an exception (or Ctrl-C) deletes the partial directory.
    """

    def __init__(self, out_dir: str | Path, tokenizer: Tokenizer, force: bool = False):
        self.out_dir = check_output_dir(out_dir, force)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.force = force
        self.tokenizer = tokenizer
        self.dtype = token_dtype(tokenizer.vocab_size)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.partial-", dir=self.out_dir.parent))
        # Held open across add_song calls; closed by commit or by leaving the `with` block.
        self._files: dict[str, BinaryIO] = {s: open(self.tmp_dir / f"{s}.bin", "wb") for s in SPLITS}  # noqa: SIM115
        self._songs = open(self.tmp_dir / "songs.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.songs = dict.fromkeys(SPLITS, 0)

    def add_song(self, split: str, ids: list[int] | np.ndarray, artist: str, title: str) -> None:
        array = np.asarray(ids, dtype=self.dtype)
        start = self.tokens[split]
        self._files[split].write(array.tobytes())
        self._files[split].write(np.array([self.tokenizer.eot_id], dtype=self.dtype).tobytes())
        span = SongSpan(split, start, start + len(array), artist, title)
        self._songs.write(json.dumps(asdict(span), ensure_ascii=False) + "\n")
        self.tokens[split] += len(array) + 1
        self.songs[split] += 1

    def commit(self, stats: dict[str, Any], options: dict[str, Any]) -> Path:
        """Close the files, write tokenizer.json and meta.json, and move the directory into place."""
        self._close()
        if self.songs["train"] == 0:
            raise DataError("no training songs were written: the corpus is empty after cleaning")
        (self.tmp_dir / "tokenizer.json").write_text(json.dumps(self.tokenizer.to_json()), encoding="utf-8")
        meta = {
            "format_version": FORMAT_VERSION,
            "dtype": self.dtype.name,
            "vocab_size": self.tokenizer.vocab_size,
            "eot_id": self.tokenizer.eot_id,
            "tokens": self.tokens,
            "songs": self.songs,
            "stats": stats,
            "options": options,
        }
        (self.tmp_dir / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        self.tmp_dir.rename(self.out_dir)
        return self.out_dir

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._songs.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._close()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


class TokenDataset:
    """A prepared dataset directory, checked on opening; token arrays are memory-mapped, not read."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"dataset directory not found: {self.path} (create one with `rapgpt prepare`)")
        self.meta: dict[str, Any] = read_json(
            self.path / "meta.json", "dataset meta.json (is this a finished `rapgpt prepare` output?)", DataError
        )
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{self.path}: unsupported dataset format {self.meta.get('format_version')!r}")
        self.tokenizer = tokenizer_from_json(read_json(self.path / "tokenizer.json", "tokenizer.json", DataError))
        self.dtype = np.dtype(self.meta["dtype"])
        for split in SPLITS:
            file = self.path / f"{split}.bin"
            expected = self.meta["tokens"][split] * self.dtype.itemsize
            if not file.is_file() or file.stat().st_size != expected:
                raise DataError(f"{file} is missing or truncated: re-run `rapgpt prepare` for {self.path}")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def tokens(self, split: str) -> np.ndarray:
        """The split's tokens as a read-only memory map (an empty array for an empty split)."""
        if self.meta["tokens"][split] == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path / f"{split}.bin", dtype=self.dtype, mode="r")

    def songs(self, split: str | None = None, artist: str | None = None) -> list[SongSpan]:
        spans = []
        with open(self.path / "songs.jsonl", encoding="utf-8") as f:
            for line in f:
                span = SongSpan(**json.loads(line))
                if (split is None or span.split == split) and (artist is None or span.artist == artist):
                    spans.append(span)
        return spans
