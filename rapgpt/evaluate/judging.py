"""The blind test in the evaluation: `rapgpt eval --judge-db PATH` adds the report's excerpts to the pool that
`rapgpt serve` shows people, and reads back how often people took each model's lines, and real lines, for real.

Excerpts are the first `EXCERPT_LINES` lines of the chunks the report scores: the artist's real held-out chunks,
and every generation of each model, fluent or not (people are the judges here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rapgpt.serve.judge import REAL, JudgeStore

EXCERPT_LINES = 4


def excerpt(chunk: str, lines: int = EXCERPT_LINES) -> str:
    return "\n".join(chunk.splitlines()[:lines])


def pool_name(model: str, run: str) -> str:
    """A model's name in the pool: the report's name and the run it came from, so runs never mix."""
    return f"{model} ({run})"


def judge(report: dict[str, Any], db: str | Path) -> dict[str, Any]:
    """Add the report's excerpts to the pool in `db`; return the answers so far, per source, for the report."""
    store = JudgeStore(db)
    runs = report.get("runs", {})
    names = {m: pool_name(m, runs.get(m, m)) for m in report["models"]}
    store.add_excerpts(REAL, (excerpt(c) for c in report["calibration"]["target_heldout"]["texts"]))
    for model, name in names.items():
        store.add_excerpts(name, (excerpt(s["chunk"]) for s in report["models"][model]["samples"]))
    sources = [{"source": t.source, "excerpts": t.excerpts, "answers": t.answers, "judged_real": t.judged_real,
                "share": t.share, "interval": t.interval} for t in store.tallies()]  # fmt: skip
    return {"db": str(db), "models": names, "sources": sources}
