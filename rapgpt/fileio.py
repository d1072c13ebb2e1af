"""Atomic file writes: a crash or Ctrl-C leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes files private; saved work should be like any other file
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def staged_dir(
    path: str | Path, force: bool = False, error: type[Exception] = FileExistsError, keep: Sequence[str | Path] = ()
) -> Iterator[Path]:
    """A hidden temporary directory beside `path` that takes its place only when the block completes.

    Leaving the block by an exception (or Ctrl-C) deletes the partial directory and keeps any old `path`, so a
    directory at `path` is always a finished one. Refused with `error` before any work: an existing non-empty
    `path` unless `force`, and a `path` that is or holds one of the inputs in `keep`, which replacing would delete.
    """
    path = Path(path)
    for source in map(Path, keep):
        if path.resolve() == source.resolve() or path.resolve() in source.resolve().parents:
            raise error(f"{path} would replace {source}, which is read to make it: choose another output directory")
    if path.exists() and not force and not (path.is_dir() and not any(path.iterdir())):
        raise error(f"{path} already exists (pass --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # not mkdtemp: the finished directory gets the user's usual permissions
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path, what: str, error: type[Exception]) -> Any:
    """Read a JSON file, raising `error` with a message naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{what} is not valid JSON: {path} ({e})") from e
