import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from rapgpt.data.lyric_bpe import LyricBPETokenizer
from rapgpt.data.tokenizer import EOT_TEXT, CharTokenizer, GPT2Tokenizer
from rapgpt.interop.hf_tokenizer import save_hf_tokenizer


def exported(tmp_path, tokenizer):
    out = tmp_path / tokenizer.kind
    out.mkdir(exist_ok=True)
    save_hf_tokenizer(out, tokenizer, max_length=256)
    return AutoTokenizer.from_pretrained(out, local_files_only=True)


def assert_same_ids(hf, tokenizer, text):
    ids = hf(text)["input_ids"]
    assert ids == tokenizer.encode(text)
    assert hf.decode(ids) == tokenizer.decode(ids)


@pytest.mark.parametrize("kind", ["gpt2", "char", "bpe"])
def test_exported_tokenizer_gives_rapgpt_ids_on_invented_text(tmp_path, make_tokenizer, invented_text, kind):
    tokenizer = make_tokenizer(kind)
    hf = exported(tmp_path, tokenizer)
    assert hf.eos_token_id == hf.bos_token_id == tokenizer.eot_id and hf.model_max_length == 256
    for text in (invented_text, invented_text.upper(), "  spaced  out .  ,  !\n\n\n", ""):
        assert_same_ids(hf, tokenizer, text)


def test_char_tokenizer_maps_unknown_characters_to_id_1(tmp_path):
    tokenizer = CharTokenizer.from_texts(["abc \n"])
    hf = exported(tmp_path, tokenizer)
    assert hf.unk_token_id == tokenizer.unknown_id == 1 and len(hf) == tokenizer.vocab_size
    assert_same_ids(hf, tokenizer, "a zebra\n😀 cab")
    assert hf.decode([tokenizer.eot_id]) == EOT_TEXT


def test_gpt2_files_are_gpt2s_own_vocabulary(tmp_path):
    hf = exported(tmp_path, GPT2Tokenizer())
    vocab = json.loads((tmp_path / "gpt2" / "vocab.json").read_text())
    assert len(vocab) == len(hf) == 50257 and vocab["Hello"] == 15496 and vocab[EOT_TEXT] == 50256


@pytest.fixture(scope="module")
def exported_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    char = CharTokenizer.from_texts(["".join(chr(c) for c in range(32, 127)) + "\n\t"])
    bpe = LyricBPETokenizer.train(["Cash flow, slow mo', I'm rolling through the night\n"] * 5, vocab_size=300)
    return [(tok, exported(tmp, tok)) for tok in (GPT2Tokenizer(), char, bpe)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60).filter(
    lambda t: EOT_TEXT not in t))
def test_exported_tokenizers_agree_on_arbitrary_text(exported_pair, text):
    for tokenizer, hf in exported_pair:
        assert_same_ids(hf, tokenizer, text)


@pytest.mark.shared_data
def test_exported_tokenizers_give_rapgpt_ids_on_real_lyrics(tmp_path, shared_data):
    songs = []
    for path in sorted((shared_data / "rap-genius-35").glob("*.json"))[:6]:
        songs += [s["lyrics"] for s in json.loads(path.read_text(encoding="utf-8"))[:15] if s.get("lyrics")]
    for path in sorted((shared_data / "genius-api-rap").glob("*.json"))[:3]:
        songs += [s["lyrics"] for s in json.loads(path.read_text(encoding="utf-8"))["songs"][:10] if s.get("lyrics")]
    assert len(songs) > 50
    # The character vocabulary and the BPE come from half the songs, so the other half also exercises unknown
    # characters and unseen words.
    bpe = LyricBPETokenizer.train(songs[::2], vocab_size=2000)
    for tokenizer in (GPT2Tokenizer(), CharTokenizer.from_texts(songs[::2]), bpe):
        hf = exported(tmp_path, tokenizer)
        for text in songs:
            assert_same_ids(hf, tokenizer, text)
