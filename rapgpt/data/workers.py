"""Worker processes for the data pipeline: batches of songs mapped in order, with a bounded number in flight."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Self

from rapgpt.errors import ConfigError


def batches(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops them and cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Workers:
    """Worker processes that map batches in order, with a bounded number in flight (`Pool.imap` would read all
    its input ahead, defeating the streaming). With one worker, the work runs in this process."""

    def __init__(self, n: int | None = None):
        self.n = (os.cpu_count() or 1) if n is None else n
        if self.n < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.n}")
        self.pool = multiprocessing.Pool(self.n, initializer=_ignore_sigint) if self.n > 1 else None

    def map(self, work: Callable[[Any], Any], batches: Iterable[list], payload: Callable[[list], Any]) -> Iterator:
        """(batch, work(payload(batch))) for each batch, in order."""
        if self.pool is None:
            for batch in batches:
                yield batch, work(payload(batch))
            return
        pending: deque = deque()
        for batch in batches:
            pending.append((batch, self.pool.apply_async(work, (payload(batch),))))
            if len(pending) > 2 * self.n:
                batch, result = pending.popleft()
                yield batch, result.get()
        while pending:
            batch, result = pending.popleft()
            yield batch, result.get()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
