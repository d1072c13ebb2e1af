import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer, tokenizer_from_json
from rapgpt.errors import TokenizerError


def test_gpt2_ids_match_openai_gpt2():
    tok = GPT2Tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" the") == [262]
    assert tok.vocab_size == 50257 and tok.eot_id == 50256
    assert tok.decode([tok.eot_id]) == "<|endoftext|>"
    # The special token's text is ordinary text to encode(): never the end-of-text id.
    assert tok.eot_id not in tok.encode("<|endoftext|>")


@given(st.text())
def test_gpt2_round_trip(text):
    tok = GPT2Tokenizer()
    assert tok.decode(tok.encode(text)) == text
    assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == text.encode("utf-8")


@given(st.text(alphabet=st.characters(exclude_characters="\ufffd")))
def test_char_round_trip_on_its_own_text(text):
    tok = CharTokenizer.from_texts([text])
    assert tok.decode(tok.encode(text)) == text


def test_char_unknown_characters_are_replaced_or_refused():
    tok = CharTokenizer.from_texts(["abc\n"])
    assert tok.encode("abz") == [tok.stoi["a"], tok.stoi["b"], tok.unknown_id]
    assert tok.decode(tok.encode("abz")) == "ab\ufffd"
    with pytest.raises(TokenizerError, match="'z'"):
        tok.encode("abz", unknown="error")


def test_tokenizers_rebuild_from_json():
    for tok in (CharTokenizer.from_texts(["yo\nflow"]), GPT2Tokenizer()):
        again = tokenizer_from_json(tok.to_json())
        assert again == tok and again.encode("yo flow") == tok.encode("yo flow")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind"):
        tokenizer_from_json({"kind": "wordpiece"})


def test_token_texts_are_each_ids_own_decoding():
    for tok in (CharTokenizer.from_texts(["yo\nflow"]), GPT2Tokenizer()):
        texts = tok.token_texts
        assert len(texts) == tok.vocab_size
        for i in (0, 1, tok.eot_id, tok.vocab_size // 2, tok.vocab_size - 1):
            assert texts[i] == tok.decode([i])


def test_tokenizers_of_different_vocabularies_differ_and_hash_apart():
    a, b = CharTokenizer.from_texts(["yo\nflow"]), CharTokenizer.from_texts(["yo\nglow"])
    assert a != b and a == CharTokenizer.from_texts(["flow\nyo"])
    assert len({a, b, CharTokenizer.from_texts(["flow\nyo"])}) == 2
