"""Invented lyrics for the evaluation tests: two made-up artists with their own vocabulary and themes."""

from __future__ import annotations

import random

from rapgpt.evaluate.references import Song

VOCABULARY = {
    "Harbor Saint": {
        "subjects": ["the tide", "my anchor", "the lighthouse", "a gull", "the harbor", "salt water", "my boat"],
        "verbs": ["pulls", "drifts", "sinks", "rolls", "washes", "calls"],
        "ends": ["out to sea", "under the pier", "past the reef", "through the fog", "with the waves", "by the dock"],
    },
    "Dust Prophet": {
        "subjects": ["the desert", "my engine", "the highway", "a coyote", "the canyon", "red sand", "my truck"],
        "verbs": ["burns", "howls", "cracks", "races", "bakes", "shakes"],
        "ends": ["in the heat", "past the mesa", "on the asphalt", "under the sun", "through the dust", "at noon"],
    },
}


def invented_line(artist: str, rng: random.Random) -> str:
    v = VOCABULARY[artist]
    return f"{rng.choice(v['subjects'])} {rng.choice(v['verbs'])} {rng.choice(v['ends'])}"


def invented_songs(songs_per_artist: int = 12, lines_per_song: int = 16, seed: int = 0) -> list[Song]:
    rng = random.Random(seed)
    return [
        Song(artist, f"{artist} song {k}", "\n".join(invented_line(artist, rng) for _ in range(lines_per_song)))
        for artist in VOCABULARY
        for k in range(songs_per_artist)
    ]
