"""`rapgpt generate` with a rhyme scheme, candidate lines and the lexicon."""

import pytest

from rapgpt.cli import main
from rapgpt.generate import BatchDecoder, SamplingParams
from rapgpt.generate.params import WritingParams
from rapgpt.generate.scheme import write
from tests import test_command

run = test_command.run  # the tiny character run, a fixture


def test_a_scheme_verse_is_printed_line_by_line_as_the_api_writes_it(run, capsys):
    path, model, tok = run
    code = main(["generate", "--model", str(path), "--prompt", "we go\\n", "--scheme", "AABB", "--lines", "4",
                 "--candidates", "3", "--seed", "7", "--max-new-tokens", "12", "--lexicon", "off"])
    out, err = capsys.readouterr()
    params = SamplingParams(max_new_tokens=12, seed=7)
    (verse,) = write(BatchDecoder(model, tok, 3), ["we go\n"], params, WritingParams("AABB", 4, 3, lexicon="off"))
    assert code == 0, err
    assert out == "we go\n" + verse.text + "\n"


def test_asking_for_the_lexicon_of_a_run_without_recorded_data_names_the_way_out(run, capsys):
    path, *_ = run
    assert main(["generate", "--model", str(path), "--lexicon", "corpus", "--max-new-tokens", "2"]) == 2
    assert "--lexicon off" in capsys.readouterr().err


def test_an_unknown_scheme_is_refused_naming_the_allowed_ones(run, capsys):
    path, *_ = run
    with pytest.raises(SystemExit):
        main(["generate", "--model", str(path), "--scheme", "ABBA"])
    assert "AABB" in capsys.readouterr().err


def test_eval_with_a_scheme_writes_verses_of_chunk_lines_and_records_the_scheme(tmp_path, monkeypatch):
    import json

    from rapgpt.evaluate import run as eval_run
    from tests.test_evaluate_run import fake_generations
    from tests.test_evaluate_run import setup as make_setup

    root = make_setup.__wrapped__(tmp_path)
    asked = []

    def recording(*args):
        asked.append(args[6])  # the writing settings, after model, tokenizer, prompts, samples, tokens and seed
        return fake_generations(*args)

    monkeypatch.setattr(eval_run, "generate_texts", recording)
    main(["eval", "--model", str(root / "run"), "--data", str(root / "data"), "--out", str(root / "out"),
          "--scheme", "ABAB", "--chunk-lines", "4", "--num-samples", "1", "--intrinsic-tokens", "0",
          "--artist", "Harbor Saint", "--cache-dir", str(root / "cache")])
    assert asked == [WritingParams(scheme="ABAB", lines=4)]
    assert json.loads((root / "out" / "report.json").read_text())["runs"]["scheme"] == "ABAB"

