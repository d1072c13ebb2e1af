import json
import re
from pathlib import Path

import pytest

from rapgpt.checkpoint import save_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import DataError
from rapgpt.evaluate.text import words
from rapgpt.generate import SamplingParams, generate
from rapgpt.generate import lexicon as lexicon_module
from rapgpt.generate.lexicon import LEXICON_FILE, Lexicon, Speller, corpus_words, run_dataset, run_lexicon
from rapgpt.model import GPT
from tests.conftest import TINY_WORDS, write_char_dataset
from tests.tiny_training import train_char_model


def test_corpus_words_keep_apostrophes_and_digits_and_split_at_hyphens():
    text = "Don't stop gettin' it, don't STOP, 50 50 50 hip-hop hip-hop hip-hop gettin' gettin' stop '' '' ''"
    assert corpus_words([text], min_count=2) == ["50", "don't", "gettin'", "hip", "hop", "stop"]
    assert "50" not in corpus_words([text], min_count=4)


def test_lone_letters_of_contractions_spellings_and_censoring_are_not_lexicon_words():
    text = ("I don't stop, they can't stop, gettin' money, y'all know it's the O.G. from the D-O-P-E crew, "
            "g-g-gettin' down like Big L, 'cause 'real' talk, f**k a fake, don t stop, u know i'm a 'vet' o ")
    found = corpus_words([text], min_count=1)
    assert {"don't", "can't", "gettin'", "y'all", "it's", "'cause", "real", "vet", "i'm", "a", "i", "u", "o"} <= set(
        found)
    assert not {w for w in found if len(w.strip("'")) == 1} - {"a", "i", "u", "o"}  # no lone "t", "g", "d", "l"
    assert not {"'real'", "f", "k", "'vet'"} & set(found)


def speller_for(lexicon_words: list[str], text: str) -> tuple[Speller, CharTokenizer]:
    tokenizer = CharTokenizer.from_texts([text])
    return Speller(Lexicon(lexicon_words), tokenizer), tokenizer


def allowed_after(speller: Speller, tokenizer: CharTokenizer, prefix: str) -> set[str]:
    mask = speller.mask(speller.start(tokenizer.encode(prefix)))
    return {tokenizer.itos[i] for i in range(tokenizer.vocab_size) if mask is None or mask[i]}


def test_inside_a_word_only_letters_that_continue_a_lexicon_word_are_allowed():
    speller, tok = speller_for(["glim", "glow", "go"], "glimowGLz 0123456789 -\n.")
    assert allowed_after(speller, tok, "gl") == {"i", "o"}  # no separator: "gl" is not a word
    assert allowed_after(speller, tok, "Gl") == {"i", "o"}  # letters match without case
    assert allowed_after(speller, tok, "glo") == {"w"}
    assert allowed_after(speller, tok, "go") == {" ", "\n", "-", ".", "<|endoftext|>"}  # "go" may end here


def test_between_words_any_word_start_or_a_number_may_begin():
    speller, tok = speller_for(["glim", "go"], "glimowGz 0123456789 -\n.")
    between = allowed_after(speller, tok, "go ")
    assert {"g", "G", "0", "9", " ", "\n"} <= between and not {"l", "z", "w"} & between
    assert allowed_after(speller, tok, "go 19") >= {"0", " "}  # a number goes on, or ends, freely
    assert "z" in allowed_after(speller, tok, "zz")  # a prompt's unknown word is left alone until it ends


BPE_TEXT = ("glim brask tovo, glimmer tovo'\nbrask glim 2023 glimbrask tovosaurus, ruun pell-weska\n"
            "Glim BRASK ruun'd dorn tovo glim\n") * 30
BPE_WORDS = ["brask", "glim", "glimmer", "pell", "ruun", "ruun'd", "tovo", "tovo'", "weska"]


def naive_allows(prefix: str, piece: str) -> bool:
    """Reference: `piece` after `prefix` (whole lexicon words) is allowed when every word it finishes is a lexicon
    word and the word it leaves open begins one; numbers always are."""
    text = prefix + piece
    for match in re.finditer(r"(?:[^\W_]|['’])+", text):
        word = match.group().lower()
        if match.end() <= len(prefix) or word.isdigit():
            continue
        if match.end() < len(text):
            if word not in BPE_WORDS:
                return False
        elif not any(w.startswith(word) for w in BPE_WORDS):
            return False
    return True


@pytest.mark.parametrize("prefix", ["", "glim ", "glim", "tovo", "ruun", "brask, ", "glim 20"])
def test_bpe_tokens_are_allowed_exactly_where_the_words_they_finish_and_start_are_lexicon_words(prefix):
    from rapgpt.data.lyric_bpe import LyricBPETokenizer

    tokenizer = LyricBPETokenizer.train([BPE_TEXT], vocab_size=300)
    speller = Speller(Lexicon(BPE_WORDS), tokenizer)
    mask = speller.mask(speller.start(tokenizer.encode(prefix)))
    pieces = {i: tokenizer.decode([i]) for i in range(tokenizer.vocab_size) if i != tokenizer.eot_id}
    assert any(len(p.strip()) > 2 for p in pieces.values())  # whole words and word pieces among the tokens
    expected = {i for i, p in pieces.items() if naive_allows(prefix, p)}
    assert {i for i in pieces if mask[i]} == expected


def test_an_untrained_bpe_model_writes_only_lexicon_words_with_the_control_on():
    from rapgpt.data.lyric_bpe import LyricBPETokenizer
    from rapgpt.model import GPTConfig

    tokenizer = LyricBPETokenizer.train([BPE_TEXT], vocab_size=300)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32)).eval()
    lexicon = Lexicon(BPE_WORDS)
    params = SamplingParams(max_new_tokens=150, temperature=1.0, top_p=None, seed=5)
    on, off = (generate(model, tokenizer, [""] * 3, params, speller=speller)
               for speller in (Speller(lexicon, tokenizer), None))
    on_words, off_words = ([w for c in cs for w in words(c.text)[:-1] if not w.isdigit()] for cs in (on, off))
    assert len(on_words) > 30 and all(w in lexicon for w in on_words)
    assert sum(w not in lexicon for w in off_words) > len(off_words) / 4


def tiny_run(tmp_path: Path, steps: int = 0) -> tuple[Path, GPT, CharTokenizer]:
    """A run of a character model trained `steps` steps (it misspells) with the dataset it records."""
    data = write_char_dataset(tmp_path / "data")
    dataset = TokenDataset(data)
    songs = [dataset.tokenizer.decode(dataset.tokens(s.split)[s.start : s.end].tolist()) for s in dataset.songs()]
    model, tokenizer = train_char_model(songs, steps=steps, tokenizer=dataset.tokenizer)
    return save_run(tmp_path / "runs" / "tiny", model, tokenizer, data="data"), model, tokenizer


def test_a_misspelling_model_writes_only_lexicon_words_with_the_control_on(tmp_path, monkeypatch):
    run, model, tokenizer = tiny_run(tmp_path, steps=100)  # it has learnt letters and spaces, not all the words
    monkeypatch.chdir(tmp_path / "runs")  # "data" is found beside the run's parent, not in the working directory
    lexicon = run_lexicon(run)
    assert set(lexicon.words) == set(TINY_WORDS)
    params = SamplingParams(max_new_tokens=800, temperature=1.0, top_p=None, seed=3)
    on = generate(model, tokenizer, [""] * 4, params, speller=Speller(lexicon, tokenizer))
    off = generate(model, tokenizer, [""] * 4, params)
    # A sample that ran out of tokens may end inside a word: only its whole words count.
    on_words, off_words = ([w for c in cs for w in words(c.text)[: -1 if c.finish_reason == "length" else None]]
                           for cs in (on, off))
    assert len(on_words) > 150 and all(w in lexicon for w in on_words)
    assert len(off_words) > 150 and sum(w not in lexicon for w in off_words) > len(off_words) / 4
    assert all(c.logprob < 0 for c in on + off)


def test_the_lexicon_is_built_once_and_cached_beside_the_run(tmp_path, monkeypatch):
    run, _, _ = tiny_run(tmp_path)
    first = run_lexicon(run)
    cached = json.loads((run / LEXICON_FILE).read_text())
    assert cached["words"] == first.words

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the lexicon was rebuilt")

    monkeypatch.setattr(lexicon_module, "corpus_words", no_rebuild)
    assert run_lexicon(run).words == first.words


def test_a_run_whose_data_is_gone_names_the_way_out(tmp_path):
    run, _, _ = tiny_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": "nowhere"}))
    with pytest.raises(DataError, match="--lexicon off"):
        run_dataset(run)
