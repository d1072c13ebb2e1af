"""Fluency comes first: non-words are never called on-style or rhyming, and real lines score near the top.

The reference songs are the bundled sample corpus; the texts judged are written here: lines of made-up words in
the manner of an undertrained character model, and plain lines a person could have written.
"""

import math

import numpy as np
import pytest

from rapgpt.data import sample_corpus_dir
from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.fluency import FluencyReference, ReferenceModel, is_fluent, mean_logprob, thresholds
from rapgpt.evaluate.intrinsic import intrinsic
from rapgpt.evaluate.originality import NgramIndex
from rapgpt.evaluate.references import Song
from rapgpt.evaluate.report import blocks, to_markdown
from rapgpt.evaluate.scoring import score_generations
from tests.serve_support import TOKENIZER, tiny_model

ARTIST = "verbose-vance"
# Letters and word shapes of a wordy artist, rhyming endings, almost no words: what a model writes that has
# learnt spelling but not words. A character n-gram classifier can like it; no reader would.
GIBBERISH = [
    "Vocabulestial the thesaurine, plo,\nI \"ome syllabrant every of to spellint\n"
    "Dictionery mestle the grammation flo\nWordsmithed, dey, the onder quellint\n",
    "Pronounciful the lexicrane, ma,\nEtymolish brung a verbose crandation\n"
    "Slllemomed the syllexione, mex, ta\nI definize the wrandle notation\n",
    "Alphabettish glore the spellinate\nMy voculent of to the brainstrane\n"
    "Articulish, dwo, the consonate\nThe parabrash in the syntrane\n",
]
PLAIN = [
    "I keep my head up when the rent is due\nMama said the world don't owe you nothing new\n"
    "So I write it down before the morning light\nEvery word I got, I put it in this fight\n",
    "Came up on the corner with a notebook in my hand\nNobody ever told me I would have to understand\n"
    "That the words are heavy and the night is long\nSo I carry every letter when I carry on\n",
    "Tell me what you need and I will find a way\nI been working on the verse since yesterday\n"
    "Got a pen and a page and a little bit of time\nGot a story in my head and it is all in rhyme\n",
]
PROMPTS = ["one\n", "two\n", "three\n"]


def sample_corpus_songs() -> list[Song]:
    return [Song(folder.name, path.stem, path.read_text(encoding="utf-8"))
            for folder in sorted(sample_corpus_dir().iterdir()) if folder.is_dir()
            for path in sorted(folder.glob("*.txt"))]  # fmt: skip


@pytest.fixture(scope="module")
def scored() -> dict:
    songs = sample_corpus_songs()
    generations = {"plain": [[text] for text in PLAIN], "gibberish": [[text, text] for text in GIBBERISH]}
    index = NgramIndex.build(s.text for s in songs)
    return score_generations(PROMPTS, generations, songs, ARTIST, Embedder(), index, chunk_lines=4,
                             max_train_chunks=80, max_heldout_chunks=30)  # fmt: skip


def test_shares_count_real_words_and_known_word_pairs():
    known = FluencyReference.build(["the blue moon rises\nthe blue moon", "the blue moon sets\nzorp zorp zorp"],
                                   min_count=3)  # fmt: skip
    assert known.vocabulary == {"the", "blue", "moon", "zorp"}
    # "glibber" is in neither CMUdict nor the vocabulary; "sets" is in CMUdict; 90s is a number
    assert known.real_word_share("the glibber sets in the 90s") == pytest.approx(5 / 6)
    # bigrams: "the blue" and "blue moon" are known, "moon glows" is not; the pair across lines counts too
    assert known.known_bigram_share("the blue moon glows") == pytest.approx(2 / 3)
    assert known.known_bigram_share("blue\nmoon rises") == pytest.approx(2 / 2)
    assert known.real_word_share("") == 0.0 and known.known_bigram_share("moon") == 0.0


def test_thresholds_lie_below_a_low_quantile_of_the_real_chunks():
    real = [{"real_word_share": x, "known_bigram_share": 1 - x} for x in np.linspace(0.5, 1.0, 101)]
    # 10% quantiles 0.55 and 0.05, medians 0.75 and 0.25: half the distance lower, 0.45 and -0.05
    assert thresholds(real, quantile=0.1, margin=0.5) == pytest.approx({"real_word_share": 0.45,
                                                                         "known_bigram_share": -0.05})
    limits = thresholds(real, quantile=0.1, margin=0.0)
    assert limits == pytest.approx({"real_word_share": 0.55, "known_bigram_share": 0.05})
    assert is_fluent({"real_word_share": 0.6, "known_bigram_share": 0.06}, limits)
    assert not is_fluent({"real_word_share": 0.54, "known_bigram_share": 0.9}, limits)


def test_mean_logprob_matches_the_intrinsic_loss_also_beyond_the_context():
    model = tiny_model(0, block_size=16)
    text = "the city never sleeps, and neither do i\n"  # 40 characters: three windows of the 16-token context
    ids = np.array([TOKENIZER.eot_id, *TOKENIZER.encode(text)])
    loss = intrinsic(model, TOKENIZER, ids, max_tokens=None).loss
    assert mean_logprob(model, TOKENIZER, text) == pytest.approx(-loss, rel=1e-5)
    assert mean_logprob(model, TOKENIZER, "THE" + text[3:]) == pytest.approx(
        mean_logprob(model, TOKENIZER, text[3:]), rel=1e-5)  # unknown characters are left out


def test_non_words_are_never_called_on_style_or_rhyming(scored):
    gibberish = scored["models"]["gibberish"]
    assert not any(s["fluent"] for s in gibberish["samples"])
    for row in gibberish["prompts"]:
        assert row["label"] == "not fluent" and row["fluent"] == 0
        assert row["comment"].startswith("not fluent")
        for praise in ("reads like", "close to", "rhymes", "generic"):
            assert praise not in row["comment"]
        assert row["probability"] is None and row["rhyme_density"] is None
    summary = gibberish["summary"]
    assert summary["fluent"] == 0 and summary["probability"] is None and summary["on_style_share"] is None
    assert summary["real_word_share"] < 0.7 and summary["known_bigram_share"] < 0.1


def test_real_songs_and_plain_lines_score_near_the_top(scored):
    limits = scored["fluency"]["thresholds"]
    for row in scored["calibration"].values():
        assert row["real_word_share"] > 0.95 and row["fluent_share"] >= 0.9
    plain = scored["models"]["plain"]
    assert all(s["fluent"] for s in plain["samples"])
    assert plain["summary"]["real_word_share"] == 1.0
    assert plain["summary"]["known_bigram_share"] > limits["known_bigram_share"]
    assert plain["summary"]["probability"] is not None and plain["summary"]["fluent"] == len(PLAIN)
    assert all(row["label"] in ("on-style", "off-style") for row in plain["prompts"])


def test_the_report_states_fluency_first_and_its_thresholds(scored):
    md = to_markdown(blocks(scored))
    summary = md[md.index("## Summary"):]
    assert summary.index("Fluency:") < summary.index("Style, over the fluent samples only")
    assert "gibberish 0 of 6 samples fluent" in md and "gibberish — (0 samples)" in md
    assert md.index("## Fluency") < md.index("## Style classifier")
    assert f"real words at least {scored['fluency']['thresholds']['real_word_share']:.3f}" in md
    assert "No reference model given" in md
    assert "rhymes" not in "".join(line for line in md.splitlines() if "| gibberish |" in line)


def test_a_reference_model_adds_its_log_probability_to_every_row():
    songs = sample_corpus_songs()
    model = ReferenceModel("tiny", tiny_model(0), TOKENIZER)
    texts = [t.lower() for t in PLAIN]
    report = score_generations(PROMPTS, {"m": [[t] for t in texts]}, songs, ARTIST, Embedder(),
                               NgramIndex.build(s.text for s in songs), chunk_lines=4, max_train_chunks=40,
                               max_heldout_chunks=20, reference_model=model)  # fmt: skip
    assert "reference_logprob" in report["fluency"]["thresholds"] and report["fluency"]["reference_model"] == "tiny"
    first = report["models"]["m"]["samples"][0]
    assert first["reference_logprob"] == pytest.approx(mean_logprob(model.model, TOKENIZER, first["chunk"]))
    assert all(math.isfinite(row["reference_logprob"]) for row in report["calibration"].values())
    assert "under the reference model tiny" in to_markdown(blocks(report))
