import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from invented_lyrics import invented_song
from test_prepare import decoded_songs, run, write_corpus

from rapgpt.cli import main
from rapgpt.data.dataset import TokenDataset
from rapgpt.data.lyric_bpe import LyricBPETokenizer
from rapgpt.data.tokenizer import EOT_TEXT, tokenizer_from_json
from rapgpt.errors import ConfigError

VERSES = [
    "Brick by brick I'm building, rhyme by rhyme I'm rising\n"
    "Sunset on the rooftop, spitting over the horizon\n",
    "Rising with the sirens, rhyming while the city's sleeping\n"
    "Keeping every promise that the pavement wasn't keeping\n",
    "Café corners, señora's radio, 🎤 turned up loud\n"
    "We don't stop, we won't drop, we're rising from the crowd\n",
]


@pytest.fixture(scope="module")
def bpe() -> LyricBPETokenizer:
    return LyricBPETokenizer.train(VERSES * 20, vocab_size=400)


def test_bpe_round_trips_its_training_text_and_merges_common_pieces(bpe):
    assert bpe.vocab_size == 400 and bpe.eot_id == 0 and bpe.decode([0]) == EOT_TEXT
    for text in VERSES:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
        assert len(ids) < 0.5 * len(text.encode("utf-8"))  # merges learned from the verses
    assert len(bpe.encode(" rising")) == 1


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_bpe_round_trips_any_text_byte_for_byte(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert b"".join(bpe.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_end_of_text_string_in_input_is_ordinary_text(bpe):
    ids = bpe.encode(f"one{EOT_TEXT}two")
    assert bpe.eot_id not in ids and bpe.decode(ids) == f"one{EOT_TEXT}two"


def test_bpe_ids_are_stable_after_saving_and_loading(bpe):
    again = tokenizer_from_json(json.loads(json.dumps(bpe.to_json())))
    assert isinstance(again, LyricBPETokenizer) and again == bpe
    text = "Sunset rhymes rising, 🎤 new words: zyxwv qq!\n"
    assert again.encode(text) == bpe.encode(text) and again.encode_batch([text, ""]) == [bpe.encode(text), []]


def test_vocab_size_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="--vocab-size must be between 257"):
        LyricBPETokenizer.train(VERSES, vocab_size=256)


def test_prepare_trains_bpe_on_the_training_split_and_datasets_decode_back(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    val_only = "zorbluxian"
    ds = run(corpus, tmp_path / "probe", val_fraction=0.25, tokenizer="bpe", vocab_size=400)
    assert isinstance(ds.tokenizer, LyricBPETokenizer) and ds.meta["vocab_size"] == 400
    assert ds.meta["options"]["tokenizer"] == "bpe" and ds.meta["options"]["vocab_size"] == 400
    # A word repeated in a validation song only never becomes one token: the BPE sees the training split alone.
    # A song's side follows a hash of its text, so the word goes into one song after another until the song that
    # holds it lands in validation.
    for path in sorted(corpus.rglob("*.txt")):
        original = path.read_text()
        path.write_text(original.replace("\n7Embed", f"\n{(val_only + ' ') * 50}\n7Embed"))
        ds = run(corpus, tmp_path / "ds", val_fraction=0.25, tokenizer="bpe", vocab_size=400, force=True)
        if any(val_only in text for text in decoded_songs(ds, "val")):
            break
        path.write_text(original)
    else:
        pytest.fail("no song with the word landed in validation")
    assert len(ds.tokenizer.encode(" " + val_only)) > 2
    originals = {invented_song(100 * a + s) for a in range(3) for s in range(8)}
    train_texts = decoded_songs(ds, "train")
    assert set(train_texts) <= originals and len(train_texts) + len(ds.songs("val")) == 24
    tune = run(corpus, tmp_path / "tune", artists=["comet-ames"], vocab_from=tmp_path / "ds")
    assert tune.tokenizer == ds.tokenizer  # a fine-tuning set reuses the base BPE


def test_vocab_size_without_a_new_bpe_is_refused_and_the_cli_passes_it(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    with pytest.raises(ConfigError, match="--vocab-size applies only to a new BPE"):
        run(corpus, tmp_path / "ds", tokenizer="char", vocab_size=500)
    assert main(["prepare", str(corpus), "--out", str(tmp_path / "cli"), "--tokenizer", "bpe", "--vocab-size",
                 "300", "--workers", "1", "--no-progress"]) == 0
    assert TokenDataset(tmp_path / "cli").tokenizer.vocab_size == 300
