"""Fixtures for the interop tests: a tiny Hugging Face GPT-2 and tiny rapgpt runs, all randomly initialised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers

from rapgpt.checkpoint import save_run
from rapgpt.data.lyric_bpe import LyricBPETokenizer
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer
from rapgpt.lora import LoRAConfig, apply_lora, lora_state, save_adapter
from rapgpt.model import GPT, GPTConfig


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture
def randomize() -> Callable[..., torch.nn.Module]:
    """Make every parameter random (biases and norms included), so that a misplaced tensor cannot go unnoticed."""
    return _randomize


@pytest.fixture
def invented_text() -> str:
    """Lines written for these tests (no real lyrics), with punctuation, digits, contractions and runs of spaces."""
    return (
        "Neon drips on the avenue, I'm rhyming through the rain\n"
        "Count it: 1, 2, 3 -- we're ridin' on the A-train!\n\n"
        "  (yeah)   Ça va? Señor Moonlight said   \"we'll see\" ...\t🎤🔥\n"
    )


@pytest.fixture
def make_tokenizer(invented_text) -> Callable[[str], Tokenizer]:
    """"gpt2", "char" (a character vocabulary drawn from the invented text) or "bpe" (a small BPE trained on it)."""
    makers = {"gpt2": GPT2Tokenizer, "char": lambda: CharTokenizer.from_texts([invented_text]),
              "bpe": lambda: LyricBPETokenizer.train([invented_text] * 10, vocab_size=320)}
    return lambda kind: makers[kind]()


@pytest.fixture
def hf_gpt2() -> torch.nn.Module:
    """A random GPT2LMHeadModel with GPT-2's vocabulary, 2 layers of width 32."""
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=48)
    return _randomize(transformers.GPT2LMHeadModel(config))


@pytest.fixture
def make_run() -> Callable[..., GPT]:
    """Save a random tiny rapgpt model with a tokenizer as a run directory; returns the model."""

    def make(run_dir: Path, tokenizer: Tokenizer, bias: bool = True, seed: int = 0) -> GPT:
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=48, n_layer=2, n_head=4, n_embd=32, bias=bias)
        model = _randomize(GPT(config), seed)
        save_run(run_dir, model, tokenizer)
        return model

    return make


@pytest.fixture
def make_adapter(make_run) -> Callable[..., GPT]:
    """Save a base run (char tokenizer) in `tmp/base` and a LoRA adapter with random, non-zero tensors trained on it
    in `tmp/adapter`; returns the adapted model (in eval mode)."""

    def make(tmp: Path, targets: tuple[str, ...], record_base: bool = True, seed: int = 0) -> GPT:
        model = make_run(tmp / "base", CharTokenizer.from_texts(["Rhymes on the 9 train, ok?\n"]), seed=seed)
        config = LoRAConfig(rank=4, alpha=6.0, targets=targets)
        apply_lora(model, config)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for tensor in lora_state(model).values():
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.2)
        save_adapter(tmp / "adapter", model, config, tmp / "base" if record_base else None)
        return model.eval()

    return make
