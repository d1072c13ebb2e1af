"""Interoperability: rapgpt runs to and from the formats other tools read.

    gpt2.py          the one mapping between rapgpt's GPT and Hugging Face's GPT2LMHeadModel (config and weights)
    hf_import.py     `rapgpt import-hf`: a Hugging Face GPT-2 checkpoint directory -> a rapgpt run
    hf_export.py     `rapgpt export --format hf`: a run -> a directory that `transformers` loads
    hf_tokenizer.py  the tokenizer files of that directory
    model_card.py    its README.md

This module imports nothing heavy, so that the command line can list the formats quickly.
"""

from __future__ import annotations

from pathlib import Path

from rapgpt.errors import ConfigError

EXPORT_FORMATS = ("hf",)


def export(run: str | Path, out_dir: str | Path, format: str = "hf", *, force: bool = False) -> Path:
    """Export the run directory `run` to `out_dir` in `format` (one of `EXPORT_FORMATS`) and return `out_dir`."""
    if format == "hf":
        from rapgpt.interop.hf_export import export_hf

        return export_hf(run, out_dir, force=force)
    raise ConfigError(f"unknown export format {format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
