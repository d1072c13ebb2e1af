"""Checks shared by the Hugging Face import tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rapgpt.checkpoint import load_run
from rapgpt.data.tokenizer import GPT2Tokenizer


def assert_same_logits(hf_model: torch.nn.Module, run_dir: str | Path) -> dict[str, Any]:
    """Check that the run in `run_dir` gives `hf_model`'s logits with GPT-2's tokenizer; return the run's config."""
    model, tokenizer, config = load_run(run_dir)
    idx = torch.randint(0, 50257, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, ours = hf_model(idx).logits, model(idx)[0]
    assert isinstance(tokenizer, GPT2Tokenizer)
    assert (ours - expected).abs().max() < 1e-4
    return config
