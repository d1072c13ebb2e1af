"""The data stage: readers, cleaning, deduplication, split, tokenizers and the dataset format (`rapgpt prepare`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_corpus_dir() -> Path:
    """The original sample corpus bundled inside the installed package: `<artist>/<song>.txt` files."""
    return Path(str(resources.files("rapgpt") / "sample_corpus"))
