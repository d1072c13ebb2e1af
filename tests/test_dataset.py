import numpy as np
import pytest

from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import DataError


def test_written_dataset_reads_back(tmp_path):
    tok = CharTokenizer.from_texts(["ab\n"])
    with DatasetWriter(tmp_path / "ds", tok) as w:
        w.add_song("train", tok.encode("ab\nba"), "A", "one")
        w.add_song("val", tok.encode("aa"), "B", "two")
        w.commit(stats={}, options={})
    ds = TokenDataset(tmp_path / "ds")
    assert ds.tokens("train").dtype == np.uint16
    assert tok.decode(ds.tokens("train")) == "ab\nba<|endoftext|>"
    [song] = ds.songs("val")
    assert (song.artist, song.title) == ("B", "two")
    assert tok.decode(ds.tokens("val")[song.start : song.end]) == "aa"


def test_interrupted_write_leaves_nothing_and_existing_needs_force(tmp_path):
    tok = CharTokenizer.from_texts(["ab"])
    with pytest.raises(KeyboardInterrupt), DatasetWriter(tmp_path / "ds", tok) as w:
        w.add_song("train", tok.encode("ab"), "A", "one")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match="--force"):
        DatasetWriter(tmp_path / "ds", tok)


def test_truncated_token_file_is_refused(tmp_path):
    tok = CharTokenizer.from_texts(["ab"])
    with DatasetWriter(tmp_path / "ds", tok) as w:
        w.add_song("train", tok.encode("abab"), "A", "one")
        w.commit(stats={}, options={})
    (tmp_path / "ds" / "train.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match="truncated"):
        TokenDataset(tmp_path / "ds")
