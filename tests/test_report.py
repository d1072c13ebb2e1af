import json
import random

import pytest

from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.originality import NgramIndex
from rapgpt.evaluate.report import blocks, to_html, to_markdown, write_report
from rapgpt.evaluate.scoring import score_generations
from tests.invented_artists import invented_line, invented_songs


@pytest.fixture(scope="module")
def report() -> dict:
    rng = random.Random(3)
    songs = invented_songs(songs_per_artist=8)
    gens = {m: [["\n".join(invented_line(a, rng) for _ in range(4)) + "\n"] * 2 for _ in range(3)]
            for m, a in (("base", "Dust Prophet"), ("adapter", "Harbor Saint"))}  # fmt: skip
    prompts = ["a | pipe in a prompt\n", "second\n", "third\n"]
    r = score_generations(prompts, gens, songs, "Harbor Saint", Embedder(), NgramIndex.build(s.text for s in songs),
                          max_train_chunks=20, max_heldout_chunks=8)  # fmt: skip
    r["runs"] = {"base": "runs/base", "adapter": "runs/lora", "data": "data/x"}
    r["intrinsic"] = {"base": {"val": {"tokens": 10, "characters": 10, "loss": 1.0, "perplexity": 2.7,
                                       "accuracy": 0.5, "bits_per_token": 1.4, "bits_per_character": 1.4}}}  # fmt: skip
    return r


def test_report_files_are_written_and_json_round_trips(report, tmp_path):
    md = write_report(report, tmp_path / "out")
    assert md == tmp_path / "out" / "report.md"
    for name in ("report.md", "report.html", "similarity.png", "prompts.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    for png in ("similarity.png", "prompts.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == json.loads(json.dumps(report))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_markdown_has_the_write_ups_table_and_before_after_summary(report):
    md = to_markdown(blocks(report))
    assert "| prompt | model | fluent samples | similarity | probability | label | comment |" in md
    assert "a \\| pipe in a prompt" in md  # a pipe in a cell does not break the table
    base, adapter = (report["models"][m]["summary"]["probability"] for m in ("base", "adapter"))
    assert f"base {base:.2f} (6 samples) -> adapter {adapter:.2f} (6 samples)" in md
    rows = [line for line in md.splitlines() if line.startswith(("| base |", "| base (6 fluent samples) |"))]
    assert len(rows) == 3 and "## Intrinsic" in md  # summary, intrinsic and craft tables
    assert "![Style probability per prompt](prompts.png)" in md
    assert "chunks of 4 lines (not 8: most generations are shorter" in md


def test_html_escapes_text(report):
    page = to_html([("p", "<script>x</script> & co"), ("table", ["a<b"], [["c>d"]])], "t")
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in page and "<th>a&lt;b</th>" in page and "<script>" not in page
