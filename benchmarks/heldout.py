"""The yardsticks of the training benchmarks, computed the same way for every contender so that figures compare:
validation loss on fixed windows (models of one tokenizer), bits per character on the same validation text (any
tokenizers), and the share of real words in samples."""

from __future__ import annotations

import functools

import numpy as np
import torch

from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.evaluate.intrinsic import intrinsic
from rapgpt.evaluate.text import words
from rapgpt.model import GPT
from rapgpt.training.batches import eval_windows

BATCH = 16


def fixed_windows(tokens: np.ndarray, block_size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` windows of a split, the same ones in every run (seed 0)."""
    inputs, targets = eval_windows(tokens, block_size, count, seed=0, split="val")
    return inputs.contiguous(), targets.contiguous()  # nanoGPT's loss views them flat


@torch.no_grad()
def mean_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats per token over the windows (each model's own `model(x, y)` loss, in fp32)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(inputs), BATCH):
        _, loss = model(inputs[i : i + BATCH], targets[i : i + BATCH])
        total += loss.item() * len(inputs[i : i + BATCH])
    model.train(was_training)
    return total / len(inputs)


def validation_text(dataset: TokenDataset, chars: int) -> list[str]:
    """The first validation songs of a dataset, about `chars` characters in all: the text every model is scored
    on, whatever its tokenizer (datasets prepared from the same sources with the same seed share their split)."""
    tokens, songs = dataset.tokens("val"), []
    for span in dataset.songs("val"):
        songs.append(dataset.tokenizer.decode(tokens[span.start : span.end].tolist()))
        if sum(map(len, songs)) >= chars:
            break
    return songs


def bits_per_character(model: torch.nn.Module, tokenizer: Tokenizer, songs: list[str]) -> float:
    """The model's bits per character on the songs, each followed by the end-of-text token, cut into windows of
    its context length back to back (`rapgpt.evaluate.intrinsic`)."""
    stream = np.concatenate([np.asarray([*ids, tokenizer.eot_id]) for ids in tokenizer.encode_batch(songs)])
    return intrinsic(model.eval(), tokenizer, stream, max_tokens=None).bits_per_character


@functools.cache
def cmudict_words() -> frozenset[str]:
    import pronouncing

    pronouncing.init_cmu()
    return frozenset(word.lower() for word, _ in pronouncing.pronunciations)


def training_words(dataset: TokenDataset) -> frozenset[str]:
    tokens = dataset.tokens("train")
    return frozenset(w for span in dataset.songs("train") for w in
                     words(dataset.tokenizer.decode(tokens[span.start : span.end].tolist())))


def real_word_share(samples: list[str], known: frozenset[str]) -> float:
    """The share of the samples' words that are real: in CMUdict or seen in the training text. A sample's last
    word may be cut off by the length limit, so it is left out."""
    found = [w for text in samples for w in words(text)[:-1]]
    return sum(w in known for w in found) / max(len(found), 1)


def samples(model: GPT, tokenizer: Tokenizer, count: int, chars: int, chars_per_token: float) -> list[str]:
    """`count` songs started from scratch, about `chars` characters each, at temperature 0.8 (no top-p)."""
    from rapgpt.generate import SamplingParams, generate

    params = SamplingParams(max_new_tokens=max(1, round(chars / chars_per_token)), temperature=0.8, top_p=None,
                            seed=0)
    return [c.text for c in generate(model.eval(), tokenizer, [""] * count, params)]
