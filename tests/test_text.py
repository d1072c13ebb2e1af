import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer
from rapgpt.generate.text import TextStream

MULTIBYTE = "Café déjà vu 🎤🔥 naïve señor — ünïcödé ✨ 日本語"


@pytest.fixture(scope="module")
def gpt2() -> GPT2Tokenizer:
    return GPT2Tokenizer()


def feed(tokenizer, ids, stop=()):
    stream = TextStream(tokenizer, tuple(stop))
    pieces = [stream.push(i) for i in ids]
    pieces.append(stream.finish())
    return stream, pieces


def first_stop_reference(text: str, stops) -> str:
    """The text read one character at a time, ended before the first stop string to complete (the longest one
    when several complete at the same character)."""
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return text[: end - max(map(len, done))]
    return text


def test_bpe_pieces_are_whole_characters_and_join_to_the_text(gpt2):
    ids = gpt2.encode(MULTIBYTE)
    partial = [i for i in ids if "\ufffd" in gpt2.token_bytes(i).decode("utf-8", errors="replace")]
    assert partial, "the sample text should contain tokens that hold part of a character"
    stream, pieces = feed(gpt2, ids)
    assert "".join(pieces) == MULTIBYTE == stream.text
    assert all("\ufffd" not in p for p in pieces)
    assert len([p for p in pieces if p]) > 5


def test_an_incomplete_character_at_the_end_becomes_one_replacement_mark(gpt2):
    emoji_bytes = "🎤".encode()
    byte_tokens = [gpt2.encoding.encode_single_token(bytes([b])) for b in emoji_bytes[:2]]
    _, pieces = feed(gpt2, gpt2.encode("yo ") + byte_tokens)
    assert "".join(pieces) == "yo \ufffd"


def test_stop_string_spanning_tokens_cuts_exactly_and_is_never_shown():
    tok = CharTokenizer(list("abcdef STOP"))
    stream, pieces = feed(tok, tok.encode("ab cdSTOP ef"), stop=["STOP"])
    assert stream.stopped and stream.text == "ab cd"
    assert "".join(pieces) == "ab cd"
    assert all("S" not in p for p in pieces)


def test_text_held_back_for_a_possible_stop_is_released_when_it_does_not_match():
    tok = CharTokenizer(list("abc STx"))
    stream = TextStream(tok, ("STOP",))
    shown = [stream.push(i) for i in tok.encode("ab STx")]
    assert shown == ["a", "b", " ", "", "", "STx"]
    assert not stream.stopped


def test_held_back_text_is_released_when_the_sequence_ends_without_the_stop():
    tok = CharTokenizer(list("abST"))
    _, pieces = feed(tok, tok.encode("abST"), stop=["STOP"])
    assert pieces[-1] == "ST" and "".join(pieces) == "abST"


def test_stop_string_inside_a_single_bpe_token_cuts_inside_it(gpt2):
    ids = gpt2.encode(" Hello world")
    stream, pieces = feed(gpt2, ids, stop=["ell"])
    assert "".join(pieces) == " H" and stream.stopped


def test_the_stop_string_that_completes_first_wins_even_inside_one_token(gpt2):
    ids = gpt2.encode(" abcdef")
    stream, _ = feed(gpt2, ids, stop=["abcdef", "cd"])
    assert stream.text == " ab" == first_stop_reference(" abcdef", ["abcdef", "cd"])


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab \né🎤x"), max_size=40),
    stops=st.lists(st.text(alphabet=st.sampled_from("ab \né🎤"), min_size=1, max_size=4), max_size=3),
)
def test_stream_matches_the_one_character_at_a_time_reference(gpt2, text, stops):
    stream, pieces = feed(gpt2, gpt2.encode(text), stop=stops)
    expected = first_stop_reference(text, stops)
    assert "".join(pieces) == expected == stream.text
    assert stream.stopped == any(s in text for s in stops)
