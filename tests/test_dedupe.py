import random

import numpy as np
import pytest
from invented_lyrics import WORDS, invented_song

from rapgpt.data.dedupe import SHINGLE, Deduplicator, fingerprint, jaccard_estimate


def naive_jaccard(a: str, b: str) -> float:
    """Reference: Jaccard similarity of the two songs' word 5-gram sets, from Python sets of word tuples."""

    def grams(text):
        words = text.lower().split()
        return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def mutate(text: str, n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split(" ")
    for _ in range(n_words):
        words[rng.randrange(len(words))] = rng.choice(WORDS).upper() + "X"
    return " ".join(words)


def test_minhash_estimate_matches_exact_jaccard():
    errors = []
    for seed in range(60):
        a = invented_song(seed, lines=40)
        b = mutate(a, n_words=seed % 30, seed=seed)
        errors.append(jaccard_estimate(fingerprint(a).signature, fingerprint(b).signature) - naive_jaccard(a, b))
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.03  # unbiased
    assert errors.std() < 0.09  # about sqrt(J (1 - J) / 60) for 60 bins


def test_exact_duplicates_differ_only_in_case_punctuation_and_spacing():
    song = invented_song(1)
    variant = "  " + song.upper().replace("\n", ",\n\n") + "!"
    assert fingerprint(song).key == fingerprint(variant).key
    assert fingerprint(song).key != fingerprint(invented_song(2)).key
    dedupe = Deduplicator()
    assert dedupe.check(fingerprint(song)) is None
    assert dedupe.check(fingerprint(variant)) == "exact duplicate"


def test_near_duplicates_are_caught_and_different_songs_kept():
    original = invented_song(3, lines=30)
    dedupe = Deduplicator(threshold=0.6)
    assert dedupe.check(fingerprint(original)) is None
    assert dedupe.check(fingerprint(mutate(original, 4, seed=0))) == "near duplicate"
    assert dedupe.check(fingerprint(original + "\n" + invented_song(4, lines=3))) == "near duplicate"  # extra verse
    assert [dedupe.check(fingerprint(invented_song(s, lines=30))) for s in range(10, 40)] == [None] * 30
    assert dedupe.check(fingerprint(mutate(original, 60, seed=1))) is None  # most 5-grams changed: another song


@pytest.mark.parametrize(("exact", "near", "expected"), [(False, True, "near duplicate"), (False, False, None)])
def test_dedupe_steps_can_be_switched_off(exact, near, expected):
    song = invented_song(5, lines=20)
    dedupe = Deduplicator(exact=exact, near=near)
    dedupe.check(fingerprint(song))
    assert dedupe.check(fingerprint(song)) == expected


def test_songs_shorter_than_a_shingle_are_only_compared_exactly():
    dedupe = Deduplicator()
    assert fingerprint("one two").signature.size == 0
    assert dedupe.check(fingerprint("one two")) is None
    assert dedupe.check(fingerprint("one two three")) is None
    assert dedupe.check(fingerprint("One, two!")) == "exact duplicate"
