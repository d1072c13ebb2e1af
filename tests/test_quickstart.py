from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.lora import load_adapted_run
from rapgpt.quickstart import QuickstartConfig, quickstart


def test_quickstart_runs_the_pipeline_on_the_sample_corpus(tmp_path, capsys):
    out = quickstart(tmp_path / "qs", QuickstartConfig(train_minutes=0.05, finetune_minutes=0.03, evaluate=False,
                                                       serve=False))
    printed = capsys.readouterr().out
    # The held-out artist is absent from pretraining and alone in the fine-tuning set, with one vocabulary.
    base_data, artist_data = TokenDataset(out / "data"), TokenDataset(out / "artist-data")
    assert "verbose-vance" not in {s.artist for s in base_data.songs()}
    assert {s.artist for s in artist_data.songs()} == {"verbose-vance"}
    assert artist_data.tokenizer == base_data.tokenizer
    load_run(out / "base")
    load_adapted_run(out / "base", out / "adapter")
    # Lyrics from the base model and from the adapter were printed, each after its heading. (A model trained for
    # seconds on a busy machine may end its song after a few characters: any text is lyrics here.)
    base_part = printed.split("lyrics from the base model")[1].split("lyrics from the verbose-vance adapter")
    assert all(part.strip() for part in base_part)
