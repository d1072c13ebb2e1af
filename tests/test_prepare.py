import json
from pathlib import Path

import numpy as np
import pytest
from invented_lyrics import invented_song

import rapgpt.data
import rapgpt.data.prepare as prepare_module
from rapgpt.cli import main
from rapgpt.data import sample_corpus_dir
from rapgpt.data.clean import CleanOptions, clean_lyrics
from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.dedupe import fingerprint
from rapgpt.data.prepare import artist_key, prepare
from rapgpt.data.split import split_scores
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer
from rapgpt.errors import ConfigError, DataError

ARTISTS = ("comet-ames", "dusty-furrow", "velvet-quarry")


def write_corpus(root: Path, songs_per_artist: int = 8, duplicates: bool = True) -> Path:
    """A folder corpus of invented songs with Genius-style noise, plus an exact and a near duplicate."""
    for a, artist in enumerate(ARTISTS):
        (root / artist).mkdir(parents=True)
        for s in range(songs_per_artist):
            seed = 100 * a + s
            text = f"3 ContributorsSong {seed} Lyrics\n[Verse 1: {artist}]\n{invented_song(seed)}\n7Embed"
            (root / artist / f"song-{s}.txt").write_text(f"# Song {seed}\n{text}")
    if duplicates:
        (root / ARTISTS[0] / "zz-song-0-album-version.txt").write_text(invented_song(0).upper())
        (root / ARTISTS[0] / "zz-song-1-remix.txt").write_text(invented_song(1) + "\nyeah")
    (root / ARTISTS[0] / "skit.txt").write_text("[Skit]\nshort words only")
    return root


def decoded_songs(ds: TokenDataset, split: str) -> list[str]:
    tokens = ds.tokens(split)
    return [ds.tokenizer.decode(tokens[s.start : s.end]) for s in ds.songs(split)]


def run(corpus, out, **kwargs):
    return TokenDataset(prepare([corpus], out, progress=False, workers=1, **kwargs))


def test_prepared_dataset_decodes_back_to_the_cleaned_songs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    ds = run(corpus, tmp_path / "ds", val_fraction=0.25, seed=3)
    songs = {s.title: text for split in ("train", "val") for s, text in zip(ds.songs(split), decoded_songs(ds, split))}
    assert len(songs) == 24
    for a in range(len(ARTISTS)):
        for s in range(8):
            assert songs[f"Song {100 * a + s}"] == invented_song(100 * a + s)  # noise gone, text intact
    stats, meta = ds.meta["stats"], ds.meta
    assert stats["dropped"] == {"exact duplicate": 1, "near duplicate": 1, "too short (< 30 words)": 1}
    assert (stats["train"]["songs"], stats["val"]["songs"]) == (18, 6)
    val_keys = [fingerprint(text).key for text in decoded_songs(ds, "val")]
    train_keys = [fingerprint(text).key for text in decoded_songs(ds, "train")]
    assert (split_scores(val_keys, 3) < 0.25).all() and (split_scores(train_keys, 3) >= 0.25).all()
    assert stats["train"]["tokens"] == meta["tokens"]["train"] == len(ds.tokens("train"))
    assert stats["total"]["words"] == sum(len(t.split()) for t in songs.values())
    assert ds.tokens("train")[-1] == ds.tokenizer.eot_id and ds.tokens("train").dtype == np.uint16
    assert meta["options"]["val_fraction"] == 0.25 and meta["options"]["clean"]["min_words"] == 30


def test_split_is_by_song_and_no_song_text_is_on_both_sides(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    for i in range(6):  # the same song under several titles; with dedupe off it must still stay on one side
        (corpus / ARTISTS[1] / f"copy-{i}.txt").write_text(invented_song(7))
    ds = run(corpus, tmp_path / "ds", val_fraction=0.5, clean=CleanOptions(dedupe=False, near_dedupe=False))
    train, val = decoded_songs(ds, "train"), decoded_songs(ds, "val")
    assert len(train) + len(val) == 32 and val
    assert not set(train) & set(val)
    assert all(line not in "\n".join(train).split("\n") for text in val for line in text.split("\n"))


def test_a_songs_split_is_the_same_in_the_full_dataset_and_in_artist_subsets(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", songs_per_artist=20, duplicates=False)

    def sides(**kwargs) -> dict[str, str]:
        ds = run(corpus, tmp_path / f"ds-{len(list(tmp_path.iterdir()))}", val_fraction=0.3, **kwargs)
        return {s.title: split for split in ("train", "val") for s in ds.songs(split)}

    full = sides()
    assert 0 < list(full.values()).count("val") < len(full)
    for subset in (sides(artists=[ARTISTS[1]]), sides(exclude_artists=[ARTISTS[0]])):
        assert subset and {title: full[title] for title in subset} == subset
        assert "val" in subset.values()


def test_a_single_file_catalogue_is_split_in_chunks_at_blank_lines(tmp_path):
    path = tmp_path / "catalogue.txt"
    text = "\n\n".join(invented_song(seed) for seed in range(60))  # single blank lines: read as one song
    path.write_text(text)
    ds = run(path, tmp_path / "ds", val_fraction=0.2)
    parts = {
        s.title: chunk for split in ("train", "val") for s, chunk in zip(ds.songs(split), decoded_songs(ds, split))
    }
    assert len(parts) == 6 and ds.songs("val")  # 60 stanzas of 48 words: chunks of 9 stanzas, the last one of 15
    assert "\n\n".join(parts[f"catalogue #1 (part {i})"] for i in range(1, 7)) == text  # cut at blank lines only
    assert ds.meta["stats"]["split_fallback"].startswith("a single song: cut into 6 chunks at blank lines")


def test_a_single_song_that_cannot_be_cut_is_refused_naming_separator(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text(invented_song(1, lines=40))
    with pytest.raises(DataError, match="a single song after cleaning.*--separator"):
        run(path, tmp_path / "ds")
    assert TokenDataset(prepare([path], tmp_path / "ds", val_fraction=0.0, workers=1, progress=False)).songs()


def test_output_does_not_depend_on_the_number_of_workers(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", songs_per_artist=40)
    for tokenizer in ("char", "gpt2"):
        one = prepare([corpus], tmp_path / f"one-{tokenizer}", tokenizer, workers=1, progress=False)
        two = prepare([corpus], tmp_path / f"two-{tokenizer}", tokenizer, workers=2, progress=False)
        for name in ("train.bin", "val.bin", "songs.jsonl", "tokenizer.json"):
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_gpt2_dataset_holds_gpt2_ids(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    ds = run(corpus, tmp_path / "ds", tokenizer="gpt2")
    assert isinstance(ds.tokenizer, GPT2Tokenizer) and ds.meta["eot_id"] == 50256
    span = ds.songs("train")[0]
    text = clean_lyrics((corpus / ARTISTS[0] / "song-0.txt").read_text().split("\n", 1)[1], title="Song 0")
    assert span.title == "Song 0"
    assert ds.tokens("train")[span.start : span.end].tolist() == GPT2Tokenizer().encode(text)
    assert "unknown_chars" not in ds.meta["stats"]


def test_char_vocabulary_comes_from_the_training_songs_only(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    ds = run(corpus, tmp_path / "probe", val_fraction=0.2)
    val_title = ds.songs("val")[0].title
    [path] = [p for p in corpus.rglob("*.txt") if p.read_text().startswith(f"# {val_title}\n")]
    path.write_text(path.read_text().replace("\n7Embed", " ~^@\n7Embed"))
    ds = run(corpus, tmp_path / "ds", val_fraction=0.2)
    assert ds.songs("val")[0].title == val_title  # the split depends on the songs' words, not on punctuation
    assert isinstance(ds.tokenizer, CharTokenizer)
    assert not {"~", "^", "@"} & set(ds.tokenizer.chars)
    assert ds.meta["stats"]["unknown_chars"] == {"count": 3, "chars": "@^~"}
    assert " \ufffd\ufffd\ufffd\n" in decoded_songs(ds, "val")[0] + "\n"


def test_artist_selection_with_a_base_vocabulary(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    (corpus / "dusty-furrow" / "song-0.txt").write_text(invented_song(9) + "\nK9 & sparks")
    base = run(corpus, tmp_path / "base", exclude_artists=["Dusty Furrow"])
    assert {s.artist for s in base.songs()} == {"comet-ames", "velvet-quarry"}
    assert base.meta["stats"]["dropped"] == {"excluded artist (--exclude-artist)": 8, "too short (< 30 words)": 1}
    tune = run(corpus, tmp_path / "tune", artists=["DUSTY_FURROW"], vocab_from=tmp_path / "base")
    assert {s.artist for s in tune.songs()} == {"dusty-furrow"} and len(tune.songs()) == 8
    assert tune.tokenizer == base.tokenizer  # a fine-tuning set shares its base model's vocabulary
    assert tune.meta["stats"]["unknown_chars"] == {"count": 3, "chars": "&9K"}
    assert tune.meta["options"]["vocab_from"] == str(tmp_path / "base")
    assert artist_key("Lil' Wayne") == artist_key("lil-wayne") == "lilwayne"


def test_vocab_from_with_another_tokenizer_kind_is_refused(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    run(corpus, tmp_path / "base")
    with pytest.raises(ConfigError, match="--tokenizer gpt2 conflicts with --vocab-from"):
        run(corpus, tmp_path / "tune", tokenizer="gpt2", vocab_from=tmp_path / "base")
    with pytest.raises(DataError, match="dataset directory not found"):
        run(corpus, tmp_path / "tune", vocab_from=tmp_path / "nowhere")


def test_unknown_artist_is_refused_with_the_artists_found(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    with pytest.raises(DataError, match=r"no songs by 'Nobody'.*comet-ames \(9\), dusty-furrow \(8\)"):
        run(corpus, tmp_path / "ds", artists=["Nobody"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_corpus_empty_after_cleaning_is_refused(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    with pytest.raises(DataError, match=r"empty after cleaning: 25 songs read, 25 too short \(< 1000 words\)"):
        run(corpus, tmp_path / "ds", clean=CleanOptions(min_words=1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_bad_options_fail_before_any_work(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    with pytest.raises(ConfigError, match="unknown tokenizer 'wordpiece'"):
        run(corpus, tmp_path / "ds", tokenizer="wordpiece")
    with pytest.raises(ConfigError, match="--val-fraction"):
        run(corpus, tmp_path / "ds", val_fraction=1.5)
    with pytest.raises(ConfigError, match="--workers"):
        prepare([corpus], tmp_path / "ds", workers=0, progress=False)
    with pytest.raises(DataError, match="source not found"):
        run(tmp_path / "nowhere", tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_existing_output_is_replaced_only_with_force(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    run(corpus, tmp_path / "ds", seed=1)
    with pytest.raises(DataError, match="already exists.*--force"):
        run(corpus, tmp_path / "ds", seed=2)
    assert TokenDataset(tmp_path / "ds").meta["options"]["seed"] == 1
    assert run(corpus, tmp_path / "ds", seed=2, force=True).meta["options"]["seed"] == 2


@pytest.mark.parametrize("stage", ["cleaning", "writing"])
def test_interrupted_prepare_leaves_nothing_behind(tmp_path, monkeypatch, stage):
    corpus = write_corpus(tmp_path / "corpus", songs_per_artist=30)
    run(corpus, tmp_path / "ds", seed=1)
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    if stage == "cleaning":
        original = prepare_module.clean_batch
        monkeypatch.setattr(prepare_module, "clean_batch", interrupt)
    else:
        original = DatasetWriter.add_song
        monkeypatch.setattr(DatasetWriter, "add_song", lambda self, *a: interrupt(self, *a))
    for out in ("fresh", "ds"):  # a new output, and one being replaced with --force
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            prepare([corpus], tmp_path / out, seed=2, force=True, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "ds"]  # no partial or spool directories
    assert TokenDataset(tmp_path / "ds").meta["options"]["seed"] == 1  # the old dataset is intact


def test_worker_failure_leaves_nothing_behind(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    (corpus / "comet-ames" / "song-3.txt").write_bytes(b"caf\xe9 ole")
    with pytest.raises(DataError, match="song-3.txt is not valid UTF-8"):
        prepare([corpus], tmp_path / "ds", workers=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_no_source_means_the_bundled_sample_corpus(tmp_path, monkeypatch):
    assert sample_corpus_dir() == Path(rapgpt.__file__).parent / "sample_corpus"
    corpus = write_corpus(tmp_path / "corpus", duplicates=False)
    monkeypatch.setattr(rapgpt.data, "sample_corpus_dir", lambda: corpus)
    ds = TokenDataset(prepare(out=tmp_path / "ds", workers=1, progress=False))
    assert len(ds.songs()) == 24 and ds.meta["options"]["sources"] == [str(corpus)]


def test_cli_prepares_and_prints_the_statistics(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    argv = ["prepare", str(corpus), "--out", str(tmp_path / "ds"), "--tokenizer", "char", "--val-fraction", "0.2",
            "--seed", "5", "--min-words", "3", "--no-near-dedupe", "--no-urls", "--workers", "1",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["songs", "artists", "words", "chars", "tokens"]
    assert "dropped: 1 exact duplicate" in out and "dataset written to" in out
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["options"]["clean"] == {**meta["options"]["clean"], "min_words": 3, "near_dedupe": False,
                                        "urls": False, "genius_noise": True}  # fmt: skip
    assert meta["songs"]["train"] + meta["songs"]["val"] == 26  # the near duplicate and the skit are kept now
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("(pass --force to replace it)")


@pytest.mark.shared_data
def test_real_corpus_subset_is_cleaned_deduplicated_and_counted(shared_data, tmp_path):
    ds = TokenDataset(prepare([shared_data / "rap-genius-35" / "Eazy-E.json"], tmp_path / "ds", "gpt2",
                              progress=False))  # fmt: skip
    stats = ds.meta["stats"]
    assert stats["total"]["artists"] == 1
    assert stats["total"]["songs"] + sum(stats["dropped"].values()) == 77  # the file's records
    assert stats["dropped"]["near duplicate"] > 0  # the same songs on several albums
    assert 1.2 < stats["total"]["tokens"] / stats["total"]["words"] < 1.8
    text = "\n".join(decoded_songs(ds, "train"))
    assert "[" not in text and "Produced by" not in text and "\n\n\n" not in text


def test_bundled_sample_corpus_prepares_with_no_source(tmp_path):
    if not sample_corpus_dir().is_dir():
        pytest.skip("the sample corpus is not in this checkout")
    stats = TokenDataset(prepare(out=tmp_path / "ds", progress=False)).meta["stats"]
    assert stats["total"]["artists"] >= 6 and stats["total"]["songs"] >= 60 and stats["total"]["words"] >= 15_000
    assert stats["val"]["songs"] > 0
