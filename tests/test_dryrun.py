import json

from invented_lyrics import invented_song

from rapgpt.cli import main
from rapgpt.data.config import PrepareConfig
from rapgpt.data.dryrun import EXCERPT_LINES, dry_run


def write_sources(root):
    """A JSON scrape with its songs under a key (lyrics as lists of lines), and a folder with a Genius page,
    a duplicate of a JSON song and a song too short to keep."""
    tracks = [{"name": f"Track {i}", "artist": "Comet Ames", "lyrics": invented_song(i).split("\n")} for i in range(5)]
    (root / "scrape.json").write_text(json.dumps({"user": {"name": "someone"}, "top_tracks": tracks}))
    folder = root / "folder" / "dusty-furrow"
    folder.mkdir(parents=True)
    (folder / "page.txt").write_text(
        f"# Lantern\n5 ContributorsTranslationsDeutschLantern Lyrics[Intro]\n{invented_song(9)}"
    )
    (folder / "copy.txt").write_text(invented_song(2))
    (folder / "short.txt").write_text("only a few words")
    return [root / "scrape.json", root / "folder"]


def test_dry_run_counts_what_each_source_keeps_and_why(tmp_path):
    json_source, folder = dry_run(write_sources(tmp_path), PrepareConfig(workers=1), progress=False).sources
    assert json_source.found == {str(tmp_path / "scrape.json"): "json: the list under 'top_tracks'"}
    assert (json_source.kept, json_source.artists, json_source.words) == (5, {"Comet Ames"}, 5 * 48)
    assert folder.kept == 1 and folder.artists == {"dusty-furrow"}
    assert folder.drops == {"exact duplicate": 1, "too short (< 30 words)": 1}  # a copy of a JSON song
    assert [e.title for e in folder.excerpts] == ["Lantern"]
    assert folder.excerpts[0].text == "\n".join(invented_song(9).split("\n")[:EXCERPT_LINES])  # cleaned: no header
    assert len(json_source.excerpts) == 3


def test_prepare_dry_run_prints_the_report_and_writes_nothing(tmp_path, capsys):
    sources = write_sources(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    argv = ["prepare", *map(str, sources), "--out", str(tmp_path / "ds"), "--dry-run", "--workers", "1",
            "--no-progress", "--exclude-artist", "Dusty Furrow"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"source: {sources[0]}\n  read as: json: the list under 'top_tracks'\n" in out
    assert "kept: 5 of 5 songs, 1 artist, 240 words" in out
    assert "kept: 0 of 3 songs, 0 artists, 0 words\n  dropped: 3 excluded artist (--exclude-artist)" in out
    assert out.count("  excerpt ") == 3 and '  excerpt 1: Comet Ames, "Track ' in out
    assert out.rstrip().endswith("to validation (seed 1337)\ndry run: nothing was written")
    assert sorted(tmp_path.rglob("*")) == before


def test_prepare_without_out_or_dry_run_is_refused(tmp_path, capsys):
    assert main(["prepare", str(tmp_path), "--no-progress"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
