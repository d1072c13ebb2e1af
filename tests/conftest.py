"""Shared test fixtures: tiny models and the location of the real corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rapgpt.model import GPT, GPTConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tiny test models gain nothing from intra-op threads, and on a busy machine each op's thread hand-off can cost
# milliseconds: one thread keeps the suite fast and its timings steady.
torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """The real lyric corpora beside the project; tests that use it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tiny_config() -> GPTConfig:
    return GPTConfig(vocab_size=67, block_size=32, n_layer=2, n_head=4, n_embd=32, dropout=0.0)


@pytest.fixture
def tiny_model(tiny_config: GPTConfig) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


# Invented words for tiny datasets (no real lyrics in the repository).
TINY_WORDS = ["glim", "brask", "tovo", "ruun", "pell", "weska", "dorn", "mimble", "saffa", "kret", "ovin", "lutra"]


def write_char_dataset(path: Path, songs: int = 24, words: int = 120, seed: int = 0) -> Path:
    """A character-level dataset of invented songs, every fourth one in the val split."""
    import random

    from rapgpt.data.dataset import DatasetWriter
    from rapgpt.data.tokenizer import CharTokenizer

    rng = random.Random(seed)
    texts = ["\n".join(" ".join(rng.choice(TINY_WORDS) for _ in range(6)) for _ in range(words // 6))
             for _ in range(songs)]
    tokenizer = CharTokenizer.from_texts(texts)
    with DatasetWriter(path, tokenizer) as writer:
        for i, text in enumerate(texts):
            writer.add_song("val" if i % 4 == 0 else "train", tokenizer.encode(text), "nobody", f"song {i}")
        writer.commit(stats={}, options={})
    return path


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_char_dataset(tmp_path / "data")
