"""The blind test's store: excerpts of real songs and of generations, and people's answers to "real or written by
the model?", in one SQLite file.

`rapgpt eval --judge-db PATH` adds excerpts to the pool and reads the answers back into its report; `rapgpt serve`
shows the excerpts and records the answers. Every call opens its own connection, so threads and processes may
share the file: SQLite serialises the writers (waiting up to `BUSY_SECONDS`), and each answer is committed in full
(write-ahead log, synchronous writes) before the server replies, so none is lost when the server stops. Answers
are anonymous: an excerpt, the answer and the time.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rapgpt.errors import ConfigError

DB_NAME = "judge.sqlite"  # the store's file in a run directory when no --judge-db is given
BUSY_SECONDS = 30.0
REAL = "real"  # the source of an excerpt from a real song; any other is a model's name
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER: no excerpt id lies beyond it
Z95 = 1.959963984540054  # the standard normal quantile of a two-sided 95% interval

SCHEMA = """
CREATE TABLE IF NOT EXISTS excerpts (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,  -- 'real' or the model's name
    text TEXT NOT NULL,
    added REAL NOT NULL,
    UNIQUE (source, text)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    excerpt INTEGER NOT NULL REFERENCES excerpts(id),
    judged_real INTEGER NOT NULL CHECK (judged_real IN (0, 1)),
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_excerpt ON answers(excerpt);
"""


@dataclass(frozen=True)
class Excerpt:
    id: int
    source: str
    text: str


@dataclass(frozen=True)
class Tally:
    """How often people took one source's excerpts for real."""

    source: str
    excerpts: int
    answers: int
    judged_real: int

    @property
    def share(self) -> float | None:
        return self.judged_real / self.answers if self.answers else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.judged_real, self.answers) if self.answers else None


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion: sound for few answers and for shares near 0 or 1."""
    if trials <= 0:
        raise ValueError("an interval needs at least one trial")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


class JudgeStore:
    """The excerpt pool and the answers in the SQLite file at `path` (created when the first excerpt is added)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"--judge-db {self.path} is a directory: give a file, e.g. {self.path / DB_NAME}")

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                if write:
                    db.executescript(SCHEMA)
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"judge database {self.path} cannot be used ({e}): give another --judge-db") from e

    def _exists(self) -> bool:
        return self.path.is_file()

    def add_excerpts(self, source: str, texts: Iterable[str]) -> int:
        """Add excerpts of one source (REAL or a model's name) to the pool; those already in it are kept once.
        Returns how many were new."""
        rows = [(source, t.strip(), time.time()) for t in texts if t.strip()]
        with self._connect(write=True) as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO excerpts (source, text, added) VALUES (?, ?, ?)", rows)
            return db.total_changes - before

    def sources(self) -> list[str]:
        """The models that have excerpts in the pool, by name."""
        if not self._exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT DISTINCT source FROM excerpts WHERE source != ? ORDER BY source", (REAL,))
            return [r[0] for r in rows]

    def pick(self, model: str | None, real: bool) -> Excerpt | None:
        """A random excerpt: from a real song, or from `model`'s generations (any model's when None). Excerpts
        with fewer answers come first, so that every excerpt gets judged."""
        if not self._exists():
            return None
        if real or model:
            where, args = "source = ?", [REAL if real else model]
        else:
            where, args = "source != ?", [REAL]
        query = (f"SELECT e.id, e.source, e.text FROM excerpts e WHERE {where} "
                 "ORDER BY (SELECT COUNT(*) FROM answers a WHERE a.excerpt = e.id), RANDOM() LIMIT 1")  # fmt: skip
        with self._connect() as db:
            row = db.execute(query, args).fetchone()
        return Excerpt(*row) if row else None

    def answer(self, excerpt: int, judged_real: bool) -> Excerpt | None:
        """Record one answer; returns the excerpt answered (None, and nothing recorded, for an unknown id)."""
        if not self._exists():
            return None
        with self._connect(write=True) as db:
            row = db.execute("SELECT id, source, text FROM excerpts WHERE id = ?", (excerpt,)).fetchone()
            if row is None:
                return None
            db.execute("INSERT INTO answers (excerpt, judged_real, at) VALUES (?, ?, ?)",
                       (excerpt, int(judged_real), time.time()))  # fmt: skip
        return Excerpt(*row)

    def tallies(self) -> list[Tally]:
        """Per source (REAL first, then each model): excerpts, answers and answers that said "real"."""
        if not self._exists():
            return []
        query = ("SELECT e.source, COUNT(DISTINCT e.id), COUNT(a.id), COALESCE(SUM(a.judged_real), 0) "
                 "FROM excerpts e LEFT JOIN answers a ON a.excerpt = e.id GROUP BY e.source "
                 "ORDER BY e.source != ?, e.source")  # fmt: skip
        with self._connect() as db:
            return [Tally(*row) for row in db.execute(query, (REAL,))]

    def correct(self) -> tuple[int, int]:
        """All answers so far, and how many of them were right."""
        if not self._exists():
            return 0, 0
        query = ("SELECT COUNT(a.id), COALESCE(SUM((e.source = ?) = (a.judged_real = 1)), 0) "
                 "FROM answers a JOIN excerpts e ON e.id = a.excerpt")  # fmt: skip
        with self._connect() as db:
            answers, right = db.execute(query, (REAL,)).fetchone()
        return answers, right
