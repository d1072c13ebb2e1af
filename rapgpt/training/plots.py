"""`curves.png`: loss and next-token accuracy of train and val, against steps (bottom) and tokens (top)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rapgpt.fileio import atomic_write


def plot_curves(records: list[dict[str, Any]], path: str | Path) -> None:
    """Draw the evaluation records into `path` (written atomically, so a viewer never sees half a file)."""
    steps = [r["step"] for r in records]
    last = records[-1]
    tokens_per_step = last["tokens"] / last["step"] if last["step"] else 1.0
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    for ax, metric, title in zip(fig.subplots(1, 2), ("loss", "acc"), ("cross-entropy loss", "next-token accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(steps, [r[f"{split}_{metric}"] for r in records], style, marker=".", label=split)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
        top = ax.secondary_xaxis(
            "top", functions=(lambda s: s * tokens_per_step / 1e6, lambda t: t * 1e6 / tokens_per_step)
        )
        top.set_xlabel("tokens (millions)")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
