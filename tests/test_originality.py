import json
import random
import time

import numpy as np
import pytest

from rapgpt.errors import DataError
from rapgpt.evaluate.originality import NgramIndex, ngram_hashes, originality, word_hashes
from rapgpt.evaluate.text import words

TRAINING = [
    "the lanterns swing above the market square\nand every vendor hums a borrowed tune\n"
    "while pigeons argue over crumbs",
    "my cousin paints the subway doors at dawn\nhe signs them with a comet and a crown\n"
    "the cops just shake their heads",
]


def test_ngram_hash_matches_a_naive_polynomial():
    values = word_hashes(["a", "b", "c", "d", "e", "f", "g", "h", "i"])
    got = ngram_hashes(values, 3)
    m = 0x9E3779B97F4A7C15
    for i in range(len(values) - 2):
        want = 0
        for k in range(3):
            want = (want * m + int(values[i + k])) % 2**64
        assert int(got[i]) == want


def test_planted_passage_is_found_and_its_lines_flagged():
    index = NgramIndex.build(TRAINING)
    text = ("I wrote this one myself tonight\nhe signs them with a comet and a crown\n"
            "the cops just shake their heads\nok")
    result = originality(text, index)
    assert result.longest_copy_words == 15  # 9 + 6 words on two lines
    assert result.longest_copy == "he signs them with a comet and a crown the cops just shake their heads"
    assert result.copied_lines == ["he signs them with a comet and a crown", "the cops just shake their heads"]
    total = len(words(text)) - 7
    assert result.ngram_share == pytest.approx(8 / total)  # the 8 windows inside the 15 copied words


def test_original_text_and_ngrams_across_songs_are_not_copies():
    index = NgramIndex.build(TRAINING)
    assert originality("completely new words that nobody ever wrote down here", index).ngram_share == 0.0
    # the end of song 1 followed by the start of song 2 never occurs as one passage
    straddle = "while pigeons argue over crumbs my cousin paints the subway"
    assert originality(straddle, index).longest_copy_words == 0


def test_index_round_trips_through_its_file_and_refuses_garbage(tmp_path):
    index = NgramIndex.build(TRAINING, n=4)
    index.save(tmp_path / "idx.npy")
    loaded = NgramIndex.load(tmp_path / "idx.npy")
    assert loaded.n == 4 and np.array_equal(loaded.hashes, index.hashes)
    (tmp_path / "bad.npy").write_bytes(b"not an index")
    with pytest.raises(DataError, match="rebuilt"):
        NgramIndex.load(tmp_path / "bad.npy")


@pytest.mark.shared_data
def test_index_over_rap_genius_finds_a_planted_copy_and_nothing_in_random_words(shared_data):
    songs = [s["lyrics"] for f in sorted((shared_data / "rap-genius-35").glob("*.json")) for s in json.loads(
        f.read_text(encoding="utf-8")) if s.get("lyrics")]  # fmt: skip
    start = time.perf_counter()
    index = NgramIndex.build(songs)
    print(f"n-gram index over rap-genius-35: {len(index):,} 8-grams in {time.perf_counter() - start:.1f} s")
    rng = random.Random(0)
    vocabulary = sorted({w for s in rng.sample(songs, 200) for w in words(s)})
    noise = "\n".join(" ".join(rng.choice(vocabulary) for _ in range(8)) for _ in range(12))
    assert originality(noise, index).ngram_share == 0.0
    song_lines = [line for line in songs[123].splitlines() if len(words(line)) >= 5]
    planted = "\n".join(song_lines[2:5])  # three real lines, held only in memory
    result = originality(noise + "\n" + planted + "\n" + noise, index)
    assert result.longest_copy_words >= len(words(planted))
    assert set(song_lines[2:5]) <= {line.strip() for line in result.copied_lines}
