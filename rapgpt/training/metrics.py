"""The run's evaluation log: `metrics.jsonl` (one JSON record per evaluation) and the table printed while training."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rapgpt.fileio import atomic_write_bytes

METRICS = "metrics.jsonl"
# (record key, column title, format) of the printed table.
COLUMNS = (
    ("step", "step", "{:>7d}"),
    ("tokens", "tokens", "{:>11,d}"),
    ("train_loss", "train loss", "{:>10.4f}"),
    ("val_loss", "val loss", "{:>10.4f}"),
    ("train_acc", "train acc", "{:>9.2%}"),
    ("val_acc", "val acc", "{:>9.2%}"),
    ("lr", "lr", "{:>9.2e}"),
    ("seconds", "time", "{:>8.0f}s"),
)


def table_header() -> str:
    widths = [len(fmt.format(0 if "d}" in fmt else 0.0)) for _, _, fmt in COLUMNS]
    return "  ".join(title.rjust(w) for (_, title, _), w in zip(COLUMNS, widths))


def table_row(record: dict[str, Any]) -> str:
    return "  ".join(fmt.format(record[key]) for key, _, fmt in COLUMNS)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records in `path`; a last line torn by a crash is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def keep_metrics_until(path: str | Path, step: int) -> list[dict[str, Any]]:
    """Drop the records after `step` (written after the checkpoint a run resumes from) and return the rest."""
    records = [r for r in read_metrics(path) if r["step"] <= step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    return records
