import random

import pytest

from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.originality import NgramIndex, originality
from rapgpt.evaluate.scoring import chunk_length, complete_lines, score_generations
from tests.invented_artists import invented_line, invented_songs

PROMPTS = ["first prompt\n", "second prompt\n"]


def sample(artist: str, rng: random.Random, index: NgramIndex, lines: int = 5) -> str:
    """New lines in the artist's words: fluent (their word pairs are the songs'), and drawn again until no word
    8-gram of them comes from the songs."""
    while True:
        text = "\n".join(invented_line(artist, rng) for _ in range(lines)) + "\n"
        if originality(text, index).ngram_share == 0:
            return text


@pytest.fixture(scope="module")
def scored() -> dict:
    """Base samples in the other artist's words (one of them copying a training song), adapter samples in the
    target's words: the report must see the adapter move toward the target."""
    rng = random.Random(1)
    songs = invented_songs()
    copied = "\n".join(songs[-1].text.splitlines()[:5]) + "\n"  # a Dust Prophet song, word for word
    index = NgramIndex.build(s.text for s in songs)
    generations = {
        "base": [[copied, sample("Dust Prophet", rng, index)],
                 [sample("Dust Prophet", rng, index), sample("Dust Prophet", rng, index)]],
        "adapter": [[sample("Harbor Saint", rng, index) for _ in range(2)] for _ in PROMPTS],
    }  # fmt: skip
    return score_generations(PROMPTS, generations, songs, "Harbor Saint", Embedder(), index, chunk_lines=8,
                             max_train_chunks=40, max_heldout_chunks=15)  # fmt: skip


def test_adapter_in_the_artists_words_scores_toward_the_real_songs(scored):
    base, adapter = scored["models"]["base"]["summary"], scored["models"]["adapter"]["summary"]
    real, other = scored["calibration"]["target_heldout"], scored["calibration"]["other_artists"]
    assert scored["classifier"]["auc"] > 0.95
    assert adapter["probability"] > 0.5 > base["probability"]
    assert real["probability"] > other["probability"]
    assert adapter["centroid"] > base["centroid"]
    assert adapter["on_style_share"] == 1.0 and base["on_style_share"] == 0.0


def test_chunks_match_the_generations_length(scored):
    assert (scored["chunk_lines"], scored["chunk_lines_asked"]) == (5, 8)  # the samples have 5 lines
    assert all(len(s["chunk"].splitlines()) == 5 for s in scored["models"]["adapter"]["samples"])


def test_copied_sample_is_flagged_and_the_table_comments_on_it(scored):
    base = scored["models"]["base"]
    first = base["samples"][0]
    assert first["ngram_share"] == 1.0 and len(first["copied_lines"]) == 5
    assert base["summary"]["copied_samples"] == 1
    assert base["prompts"][0]["label"] == "off-style"
    assert "copies" in base["prompts"][0]["comment"] and "copies" not in base["prompts"][1]["comment"]
    assert len(base["prompts"]) == len(PROMPTS) and len(base["samples"]) == 4


def test_a_line_cut_by_the_token_budget_is_dropped():
    assert complete_lines("one two\nthree four\nfive si") == ["one two", "three four"]
    assert complete_lines("one two\nthree four\n") == ["one two", "three four"]
    assert chunk_length({"m": [["a\nb\nc\n", "a\nb\n"], ["a\nb\nc\nd\ne\n"]]}, 8) == 3
