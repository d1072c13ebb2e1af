"""`--tensorboard`: the events, read back with TensorBoard's own reader, hold what metrics.jsonl holds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rapgpt.cli import build_parser, main
from rapgpt.errors import ConfigError
from rapgpt.training.config import PretrainConfig
from rapgpt.training.loop import pretrain
from rapgpt.training.metrics import read_metrics
from rapgpt.training.tensorboard import SAMPLE, SCALARS, SPEED

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

TINY = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "batch_size": 4, "eval_batches": 2,
        "warmup_steps": 2, "threads": 1, "precision": "fp32", "device": "cpu"}
TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


def read_events(directory: Path):
    events = event_accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(events, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_the_events_hold_the_losses_metrics_jsonl_has(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(run), "--max-steps", "8", "--eval-interval", "4",
                 "--sample-every", "2", "--sample-tokens", "8", "--tensorboard", *TINY_FLAGS]) == 0
    records = read_metrics(run / "metrics.jsonl")
    events = read_events(run / "tensorboard")
    for key, tag in SCALARS.items():
        logged = [(r["step"], r[key]) for r in records if r[key] is not None]
        assert scalars(events, tag) == [(step, pytest.approx(value, rel=1e-6)) for step, value in logged], tag
    assert [step for step, _ in scalars(events, "loss/val")] == [0, 4, 8]
    assert [step for step, _ in scalars(events, "grad_norm")] == [4, 8]  # no step before the first evaluation
    speeds = [(b["step"], (b["tokens"] - a["tokens"]) / (b["seconds"] - a["seconds"]))
              for a, b in zip(records, records[1:])]
    assert scalars(events, SPEED) == [(step, pytest.approx(value, rel=1e-5)) for step, value in speeds]
    samples = {e.step: e.tensor_proto.string_val[0].decode() for e in events.Tensors(f"{SAMPLE}/text_summary")}
    assert samples == {r["step"]: f"```\n{r['sample']}\n```" for r in records if "sample" in r}
    assert sorted(samples) == [0, 8]


def test_a_resumed_run_continues_its_curves_without_repeating_steps(tiny_dataset, tmp_path):
    settings = {**TINY, "eval_interval": 4, "tensorboard": str(tmp_path / "tb")}
    pretrain(tiny_dataset, tmp_path / "run", PretrainConfig(max_steps=8, **settings))
    pretrain(tiny_dataset, tmp_path / "run", PretrainConfig(max_steps=12, **settings), resume=True)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    events = read_events(tmp_path / "tb")
    assert scalars(events, "loss/val") == [(r["step"], pytest.approx(r["val_loss"], rel=1e-6)) for r in records]
    assert [step for step, _ in scalars(events, SPEED)] == [4, 8, 12]  # the first after resuming, from step 8's


def test_without_the_tensorboard_package_the_run_stops_before_training_and_says_how_to_install_it(
        tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ConfigError, match=r"pip install 'rapgpt\[tensorboard\]'"):
        pretrain(tiny_dataset, tmp_path / "run", PretrainConfig(max_steps=4, tensorboard="", **TINY))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_the_flag_takes_an_optional_directory(command):
    required = ["--data", "d", "--out", "o"] + (["--base", "b"] if command == "finetune" else [])
    parse = build_parser().parse_args
    assert parse([command, *required, "--tensorboard"]).tensorboard == ""  # the run's own folder
    assert parse([command, *required, "--tensorboard", "logs/tb"]).tensorboard == "logs/tb"
    assert not hasattr(parse([command, *required]), "tensorboard")  # off unless asked for
