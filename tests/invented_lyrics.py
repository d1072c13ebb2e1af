"""Invented lyrics for the data tests: random lines over a small made-up vocabulary, so that two songs made from
different seeds almost never share a word 5-gram (and no real lyrics are needed)."""

from __future__ import annotations

import random

WORDS = (  # noqa: SIM905 (a word list reads best as one string)
    "lantern orbit velvet static harbor neon copper river paper engine marble comet ladder thunder pocket "
    "window satellite garden mirror candle sidewalk rooftop midnight compass ember signal anchor circuit "
    "glacier meadow parade cobalt saddle whistle pepper mosaic quarry ribbon tunnel"
).split()


def invented_song(seed: int, lines: int = 8, words_per_line: int = 6) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(words_per_line)) for _ in range(lines))
