import json

from rapgpt.checkpoint import load_run
from rapgpt.interop.model_card import model_card


def test_card_states_data_statistics_training_settings_and_metrics(tmp_path, make_run, make_tokenizer):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    meta = {"tokens": {"train": 123456, "val": 7890}, "songs": {"train": 321, "val": 12}, "dtype": "uint16"}
    (dataset / "meta.json").write_text(json.dumps(meta))
    make_run(tmp_path / "run", make_tokenizer("char"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config |= {"data": {"path": str(dataset), "artist": "Invented MC"}, "train_config": {"lr": 0.001, "batch_size": 16},
               "step": 2000}
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    records = [{"step": s, "train_loss": 3.0 - s / 1000, "val_loss": v}
               for s, v in ((0, 4.2), (1000, 1.734567), (2000, 1.9))]
    lines = [json.dumps(r) for r in records] + ['{"step": 30']  # a last line cut short by a crash
    (tmp_path / "run" / "metrics.jsonl").write_text("\n".join(lines))

    model, tokenizer, run_config = load_run(tmp_path / "run")
    card = model_card(tmp_path / "run", run_config, model, tokenizer)
    for fact in ("| tokens.train | 123456 |", "| songs.val | 12 |", "| artist | Invented MC |", "| lr | 0.001 |",
                 "| batch_size | 16 |", "| steps trained | 2000 |", "3 evaluations", "| val_loss | 1.9 |",
                 "Lowest validation loss: 1.735 (step 1000)", f"| parameters | {model.num_params():,} |",
                 "one token per character"):
        assert fact in card, fact
    assert card.startswith("---\nlibrary_name: transformers\n")


def test_card_of_a_bare_run_says_what_is_not_recorded(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("gpt2"))
    model, tokenizer, run_config = load_run(tmp_path / "run")
    card = model_card(tmp_path / "run", run_config, model, tokenizer)
    assert "does not record its training data" in card and "no recorded evaluations" in card
    assert "GPT-2's byte-level BPE" in card and "| vocabulary | 50257 |" in card


def test_card_of_a_model_imported_from_the_hub_names_the_model_and_commit(tmp_path, make_run, make_tokenizer):
    make_run(tmp_path / "run", make_tokenizer("gpt2"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["imported_from"] = {"format": "hf", "path": "/cache/snapshots/abc", "files": ["model.safetensors"],
                               "hub": {"repo_id": "someone/tiny-gpt2", "revision": "main", "commit": "abc123"}}
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    model, tokenizer, run_config = load_run(tmp_path / "run")
    card = model_card(tmp_path / "run", run_config, model, tokenizer)
    assert "imported from the Hugging Face Hub model `someone/tiny-gpt2` at commit abc123." in card
