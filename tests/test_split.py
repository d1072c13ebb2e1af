import numpy as np
import pytest

from rapgpt.data.split import assign_splits, val_song_count
from rapgpt.errors import ConfigError


def keys(n: int) -> list[bytes]:
    return [i.to_bytes(4, "little") for i in range(n)]


def test_validation_gets_the_requested_share_of_songs():
    assert [val_song_count(n, 0.1) for n in (0, 1, 2, 9, 10, 1000)] == [0, 0, 1, 1, 1, 100]
    assert val_song_count(10, 0.0) == 0
    assert int(assign_splits(keys(1000), 0.1, seed=0).sum()) == 100


def test_split_is_seeded():
    a, b, c = (assign_splits(keys(200), 0.2, seed) for seed in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_songs_with_equal_text_stay_on_one_side():
    song_keys = [b"chorus", b"a", b"chorus", b"b", b"chorus", b"c", b"d", b"e"]
    for seed in range(20):
        is_val = assign_splits(song_keys, 0.3, seed)
        assert len({bool(is_val[i]) for i, k in enumerate(song_keys) if k == b"chorus"}) == 1
        assert 0 < is_val.sum() < len(song_keys)  # neither side is empty


def test_training_is_never_left_empty():
    assert not assign_splits([b"same"] * 5, 0.5, seed=0).any()


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_out_of_range_fraction_is_refused(fraction):
    with pytest.raises(ConfigError, match="--val-fraction"):
        assign_splits(keys(10), fraction, seed=0)
