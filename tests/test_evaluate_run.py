import json
import random

import pytest
import torch

from rapgpt import cli
from rapgpt.checkpoint import save_run
from rapgpt.data.dataset import DatasetWriter
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import ConfigError, DataError
from rapgpt.evaluate import run
from rapgpt.evaluate.config import EvalConfig
from rapgpt.evaluate.text import words
from rapgpt.generate.lexicon import run_lexicon
from rapgpt.model import GPT, GPTConfig
from tests.invented_artists import invented_line, invented_songs


def test_default_prompts_ship_with_the_package_and_files_are_read_one_per_line(tmp_path):
    prompts = run.read_prompts()
    assert len(prompts) == 10 and all(p.endswith("\n") and p.strip() for p in prompts)
    (tmp_path / "p.txt").write_text("# a comment\nfirst line\n\n  second line  \n")
    assert run.read_prompts(tmp_path / "p.txt") == ["first line\n", "second line\n"]
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="no prompts"):
        run.read_prompts(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="prompts file not found"):
        run.read_prompts(tmp_path / "missing.txt")


def test_characters_a_char_model_never_saw_are_removed_from_prompts():
    tok = CharTokenizer.from_texts(["abc \n"])
    assert run.fit_prompts(["Abc!\n", "cab\n"], tok) == ["bc\n", "cab\n"]


@pytest.fixture
def setup(tmp_path):
    songs = invented_songs()
    tok = CharTokenizer.from_texts(s.text for s in songs)
    with DatasetWriter(tmp_path / "data", tok) as w:
        for k, s in enumerate(songs):
            w.add_song("val" if k % 4 == 0 else "train", tok.encode(s.text), s.artist, s.title)
        w.commit(stats={}, options={})
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    save_run(tmp_path / "run", model, tok, data="data")  # the run records its dataset, as training does
    return tmp_path


def fake_generations(model, tokenizer, prompts, num_samples, max_new_tokens, seed, writing=None, speller=None):
    """Stands in for the sampler: the evaluation only sees texts."""
    rng = random.Random(seed)
    return [["\n".join(invented_line("Harbor Saint", rng) for _ in range(4)) + "\n"] * num_samples for _ in prompts]


def test_evaluate_writes_the_report_with_intrinsic_scores_and_a_cached_index(setup, monkeypatch):
    monkeypatch.setattr(run, "generate_texts", fake_generations)
    monkeypatch.setattr(run, "load_adapted", lambda model, adapter, device: run.load_run(model, device)[:2])
    config = EvalConfig(artist="Harbor Saint", num_samples=2, cache_dir=str(setup / "cache"),
                        reference_model=str(setup / "run"), judge_db=str(setup / "judge.sqlite"))
    out = run.evaluate(setup / "run", setup / "data", setup / "out", adapter=setup / "run", config=config)
    report = json.loads((setup / "out" / "report.json").read_text())
    assert out.read_text().startswith("# Evaluation: Harbor Saint")
    assert set(report["models"]) == {"base", "adapter"} and report["runs"]["adapter"] == str(setup / "run")
    assert set(report["intrinsic"]["base"]) == {"val", "val, Harbor Saint"}
    assert report["intrinsic"]["base"]["val"]["perplexity"] > 1
    assert len(report["models"]["base"]["samples"]) == 2 * len(run.read_prompts())
    assert len(list((setup / "cache").glob("ngrams-*.npy"))) == 1
    assert len(list((setup / "cache").glob("embeddings-*.npz"))) == 1
    assert report["fluency"]["reference_model"] == str(setup / "run")
    assert report["models"]["base"]["samples"][0]["reference_logprob"] < 0
    pooled = {t["source"]: t["excerpts"] for t in report["judge"]["sources"]}
    assert pooled[f"base ({setup / 'run'})"] == len(run.read_prompts())  # a prompt's two samples are one text


def test_samples_are_written_with_the_lexicon_as_rapgpt_generate_writes_them(setup):
    """The report judges what users get: a character model spells only words of its training text, unless the
    lexicon is turned off (this random model then writes non-words)."""
    lexicon = run_lexicon(setup / "run")
    shares = {}
    for choice in (None, "off"):
        config = EvalConfig(artist="Harbor Saint", num_samples=1, max_new_tokens=120, intrinsic_tokens=0,
                            cache_dir=str(setup / "cache"), lexicon=choice)
        run.evaluate(setup / "run", setup / "data", setup / f"out-{choice}", config=config)
        samples = json.loads((setup / f"out-{choice}" / "report.json").read_text())["models"]["base"]["samples"]
        found = [w for s in samples for w in words(s["text"])[:-1]]  # the last word may be cut by the length
        shares[choice] = sum(w in lexicon for w in found) / len(found)
    assert shares[None] == 1.0 and shares["off"] < 0.5


def test_cli_reports_a_missing_dataset_in_one_line(setup, capsys):
    status = cli.main(["eval", "--model", str(setup / "run"), "--data", str(setup / "nope"), "--out", str(setup)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "dataset directory not found" in err


def test_bad_options_are_refused_before_any_work(setup):
    with pytest.raises(ConfigError, match="--num-samples"):
        EvalConfig(num_samples=0)
    with pytest.raises(DataError, match="no songs by 'harbor saint'.*Harbor Saint"):
        run.evaluate(setup / "run", setup / "data", setup / "out", config=EvalConfig(artist="harbor saint"))
    (setup / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        run.evaluate(setup / "run", setup / "data", setup / "file")
