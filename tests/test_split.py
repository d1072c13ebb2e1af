import math

import numpy as np
import pytest

from rapgpt.data.split import assign_splits, split_scores
from rapgpt.errors import ConfigError


def keys(n: int) -> list[bytes]:
    return [i.to_bytes(4, "little") for i in range(n)]


def test_validation_gets_the_requested_share_of_songs_on_average():
    n, fraction = 10_000, 0.1
    taken = int(assign_splits(keys(n), fraction, seed=0).sum())
    assert abs(taken - n * fraction) < 4 * math.sqrt(n * fraction * (1 - fraction))  # a binomial draw
    assert not assign_splits(keys(50), 0.0, seed=0).any()


def test_a_song_goes_to_validation_when_its_score_is_below_the_fraction():
    scores = split_scores(keys(500), seed=7)
    assert ((scores >= 0) & (scores < 1)).all()
    assert np.array_equal(assign_splits(keys(500), 0.3, seed=7), scores < 0.3)


def test_split_is_seeded():
    a, b, c = (assign_splits(keys(200), 0.2, seed) for seed in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_a_songs_side_does_not_depend_on_the_other_songs():
    full = keys(2000)
    is_val = dict(zip(full, assign_splits(full, 0.1, seed=5)))
    for subset in (full[::3], full[1000:], list(reversed(full[:700]))):
        assert [is_val[k] for k in subset] == list(assign_splits(subset, 0.1, seed=5))


def test_songs_with_equal_text_stay_on_one_side():
    song_keys = [b"chorus", b"a", b"chorus", b"b", b"chorus", b"c", b"d", b"e"]
    for seed in range(20):
        is_val = assign_splits(song_keys, 0.3, seed)
        assert len({bool(is_val[i]) for i, k in enumerate(song_keys) if k == b"chorus"}) == 1
        assert 0 < is_val.sum() < len(song_keys)  # neither side is empty


def test_a_small_corpus_still_gets_one_song_on_each_side():
    for seed in range(50):
        assert assign_splits(keys(2), 0.01, seed).sum() == 1  # no score below 0.01: the lowest goes to validation
        assert assign_splits(keys(2), 0.99, seed).sum() == 1  # both below 0.99: the highest stays in training


def test_training_is_never_left_empty():
    assert not assign_splits([b"same"] * 5, 0.5, seed=0).any()
    assert not assign_splits(keys(1), 0.9, seed=0).any()


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_out_of_range_fraction_is_refused(fraction):
    with pytest.raises(ConfigError, match="--val-fraction"):
        assign_splits(keys(10), fraction, seed=0)
