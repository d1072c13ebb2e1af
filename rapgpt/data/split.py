"""Train/validation split by song, never by line or window, so that no song's text is on both sides.

Songs with the same normalised text (the dedupe key) are kept together, so even with deduplication switched off
an exact duplicate cannot leak from training into validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rapgpt.errors import ConfigError


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}")


def val_song_count(n_songs: int, val_fraction: float) -> int:
    """round(n * fraction), but at least one validation and one training song when the fraction asks for any."""
    check_val_fraction(val_fraction)
    if val_fraction == 0.0 or n_songs < 2:
        return 0
    return min(max(1, round(n_songs * val_fraction)), n_songs - 1)


def assign_splits(keys: Sequence[bytes], val_fraction: float, seed: int) -> np.ndarray:
    """A boolean array, True where song i goes to validation; groups of equal keys are drawn whole, in a seeded
    random order, until the validation set holds `val_song_count` songs (or just over, for a group)."""
    groups: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    target = val_song_count(len(keys), val_fraction)
    is_val = np.zeros(len(keys), dtype=bool)
    members = list(groups.values())
    taken = 0
    for g in np.random.default_rng(seed).permutation(len(members)):
        if taken >= target:
            break
        if taken + len(members[g]) >= len(keys):  # never leave training empty
            continue
        is_val[members[g]] = True
        taken += len(members[g])
    return is_val
