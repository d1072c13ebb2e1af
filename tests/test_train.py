import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import CheckpointError, ConfigError, DataError
from rapgpt.generate import SamplingParams, generate
from rapgpt.model import GPT, GPTConfig
from rapgpt.training.batches import eval_windows
from rapgpt.training.config import PretrainConfig, TrainConfig
from rapgpt.training.evaluate import evaluate_splits
from rapgpt.training.loop import compile_blocks, fit, pretrain, resolve_run_config, train_step
from rapgpt.training.metrics import read_metrics
from rapgpt.training.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "batch_size": 4, "eval_batches": 2,
        "warmup_steps": 4, "threads": 1, "precision": "fp32", "device": "cpu"}
TINY_FLAGS = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4",
              "--eval-batches", "2", "--warmup-steps", "4", "--threads", "1", "--precision", "fp32", "--device", "cpu"]
CPU = Runtime(torch.device("cpu"), "fp32")


def run(data: Path, out: Path, resume: bool = False, **settings) -> dict:
    return pretrain(data, out, PretrainConfig(**{**TINY, **settings}), resume=resume)


def weights(run_dir: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / name))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def assert_close_weights(a: dict, b: dict, rel: float = 1e-3) -> None:
    """Equal up to float rounding. Adam's first steps move a weight by about lr * sign(grad), so a weight whose
    gradient is ~0 may move either way on rounding noise: compare whole tensors by norm, not element by element."""
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert (v - b[k]).norm() <= rel * v.norm(), k


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rapgpt", "train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False, **kwargs)


def test_train_refuses_a_dataset_without_validation_songs(tmp_path):
    tokenizer = CharTokenizer.from_texts(["ab ba"])
    with DatasetWriter(tmp_path / "data", tokenizer) as writer:
        writer.add_song("train", tokenizer.encode("ab ba " * 50), "nobody", "only")
        writer.commit(stats={}, options={})
    with pytest.raises(DataError, match="val split is empty"):
        run(tmp_path / "data", tmp_path / "run", max_steps=2)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_train_step_with_micro_batches_matches_one_large_batch(tiny_config):
    torch.manual_seed(0)
    one, two = GPT(tiny_config), GPT(tiny_config)
    two.load_state_dict(one.state_dict())
    x, y = torch.randint(0, 67, (8, 16)), torch.randint(0, 67, (8, 16))
    opts = [torch.optim.SGD(m.parameters(), lr=1.0) for m in (one, two)]  # the step is the gradient itself
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss_one, norm_one = train_step(one, opts[0], [(x, y)], CPU, 1.0, scaler)
    loss_two, norm_two = train_step(two, opts[1], [(x[:4], y[:4]), (x[4:], y[4:])], CPU, 1.0, scaler)
    assert loss_one.item() == pytest.approx(loss_two.item(), rel=1e-6)
    assert norm_one.item() == pytest.approx(norm_two.item(), rel=1e-5)
    for a, b in zip(one.parameters(), two.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert all(p.grad is None for p in one.parameters())  # gradients cleared for the next step


@pytest.mark.parametrize("grad_clip", [0.0, 1e-3])
def test_train_step_returns_the_gradient_norm_before_clipping(tiny_config, grad_clip):
    torch.manual_seed(0)
    model, reference = GPT(tiny_config), GPT(tiny_config)
    reference.load_state_dict(model.state_dict())
    x, y = torch.randint(0, 67, (4, 16)), torch.randint(0, 67, (4, 16))
    reference(x, y)[1].backward()
    expected = torch.cat([p.grad.flatten() for p in reference.parameters()]).norm()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    _, grad_norm = train_step(model, optimizer, [(x, y)], CPU, grad_clip, torch.amp.GradScaler("cpu", enabled=False))
    assert grad_norm.item() == pytest.approx(expected.item(), rel=1e-5)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]).norm()
    assert moved.item() == pytest.approx(grad_clip or expected.item(), rel=1e-3)  # SGD at lr 1 moves by the gradient


def test_gradient_accumulation_run_matches_a_k_times_larger_batch(tiny_dataset, tmp_path):
    # The same 16 evaluation windows in both runs: 2 batches of 8, 4 batches of 4. AdamW: Muon orthogonalizes each
    # update in bf16, which turns the summation order's rounding into differences above the tolerance.
    common = {"optimizer": "adamw", "max_steps": 6, "eval_interval": 3}
    big = run(tiny_dataset, tmp_path / "big", batch_size=8, eval_batches=2, **common)
    acc = run(tiny_dataset, tmp_path / "acc", batch_size=4, eval_batches=4, grad_accum=2, **common)
    assert acc["tokens"] == big["tokens"] == 6 * 8 * 16
    assert acc["val_loss"] == pytest.approx(big["val_loss"], abs=1e-5)
    assert_close_weights(weights(tmp_path / "big"), weights(tmp_path / "acc"))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_dataset, tmp_path):
    settings = {"dropout": 0.1, "decay_steps": 12, "eval_interval": 4, "sample_every": 1, "sample_tokens": 8}
    run(tiny_dataset, tmp_path / "straight", max_steps=12, **settings)
    run(tiny_dataset, tmp_path / "split", max_steps=6, **settings)
    last = run(tiny_dataset, tmp_path / "split", resume=True, max_steps=12, **settings)
    assert last["step"] == 12
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))
    straight, split = read_metrics(tmp_path / "straight/metrics.jsonl"), read_metrics(tmp_path / "split/metrics.jsonl")
    assert [r["step"] for r in split] == [0, 4, 6, 8, 12]
    assert split[-1]["val_loss"] == straight[-1]["val_loss"] and split[-1]["loss"] is not None


def test_run_killed_mid_training_resumes_to_the_weights_of_an_uninterrupted_run(tiny_dataset, tmp_path):
    flags = [*TINY_FLAGS, "--max-steps", "150", "--eval-interval", "10"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rapgpt", "train", "--data", str(tiny_dataset), "--out", str(out),
                             *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(read_metrics(out / "metrics.jsonl")) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # into the following steps
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_done = read_metrics(out / "metrics.jsonl")[-1]["step"]
    assert 30 <= steps_done < 150, "the run should have been killed part-way"
    resumed = cli("--data", str(tiny_dataset), "--out", str(out), "--resume", *flags)
    assert resumed.returncode == 0, resumed.stderr
    run(tiny_dataset, tmp_path / "straight", max_steps=150, eval_interval=10)
    assert_same_weights(weights(tmp_path / "straight"), weights(out))
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(0, 151, 10))


def test_corrupt_state_is_refused_and_the_run_left_as_it_was(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=4, eval_interval=2)
    state = bytearray((out / "state.pt").read_bytes())
    state[len(state) // 3] ^= 0x01
    (out / "state.pt").write_bytes(bytes(state))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli("--data", str(tiny_dataset), "--out", str(out), "--resume", "--max-steps", "8")
    assert result.returncode == 2
    assert result.stderr.startswith("rapgpt train: error:") and "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_state_of_another_run_is_refused(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path / "a", max_steps=2, eval_interval=2, seed=1)
    run(tiny_dataset, tmp_path / "b", max_steps=2, eval_interval=2, seed=2)
    (tmp_path / "b/state.pt").write_bytes((tmp_path / "a/state.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"belongs to a different run \(train.seed: saved 1, now 2"):
        run(tiny_dataset, tmp_path / "b", resume=True, max_steps=4, eval_interval=2, seed=2)


def test_resume_keeps_the_recorded_settings_and_refuses_changes_to_them(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path / "run", max_steps=2, eval_interval=2, lr=3e-3)
    config = resolve_run_config(PretrainConfig, tmp_path / "run", True, flags={"max_steps": 5})
    assert (config.lr, config.max_steps, config.n_embd) == (3e-3, 5, 32)
    with pytest.raises(ConfigError, match="--lr 0.001: the run was started with 0.003"):
        resolve_run_config(PretrainConfig, tmp_path / "run", True, flags={"lr": 1e-3})


def test_a_new_run_never_overwrites_an_existing_one(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path / "run", max_steps=2, eval_interval=2)
    before = (tmp_path / "run/model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run: pass --resume"):
        run(tiny_dataset, tmp_path / "run", max_steps=2)
    assert (tmp_path / "run/model.safetensors").read_bytes() == before
    with pytest.raises(CheckpointError, match="no resumable state"):
        run(tiny_dataset, tmp_path / "empty", resume=True, max_steps=2)


def test_cli_run_directory_holds_the_model_config_metrics_curves_and_state(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    toml = tmp_path / "settings.toml"
    toml.write_text("max_steps = 10\neval_interval = 5\nlr = 0.003\n")
    result = cli("--data", str(tiny_dataset), "--out", str(out), "--config", str(toml), "--eval-interval", "4",
                 "--sample-every", "2", "--sample-tokens", "12", *TINY_FLAGS)
    assert result.returncode == 0, result.stderr
    assert "char-10m:" in result.stdout and "M parameters (2 layers, 2 heads, 32 wide" in result.stdout
    assert "train loss" in result.stdout and "--- sample at step 0 ---" in result.stdout
    assert {"model.safetensors", "best.safetensors", "config.json", "metrics.jsonl", "curves.png", "state.pt"} <= {
        p.name for p in out.iterdir()}
    model, tokenizer, config = load_run(out)
    assert model.config == GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    assert config["train_config"]["lr"] == 0.003 and config["train_config"]["eval_interval"] == 4
    assert config["progress"]["step"] == 10 and config["progress"]["tokens"] == 10 * 4 * 16
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 4, 8, 10]
    assert [("sample" in r) for r in records] == [True, False, True, False]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_samples_during_training_are_what_the_decoder_writes_with_the_run_seed(tiny_dataset, tmp_path):
    last = run(tiny_dataset, tmp_path / "run", max_steps=4, eval_interval=4, sample_every=1, sample_tokens=12)
    model, tokenizer, _ = load_run(tmp_path / "run")  # the weights the last sample was written with
    (expected,) = generate(model, tokenizer, [""], SamplingParams(max_new_tokens=12, seed=PretrainConfig().seed))
    assert last["sample"] == expected.text


def write_two_pattern_dataset(path: Path) -> Path:
    """Train songs repeat "aab", val songs repeat "abb": learning the first makes the second less likely."""
    tokenizer = CharTokenizer.from_texts(["ab"])
    with DatasetWriter(path, tokenizer) as writer:
        for i in range(8):
            writer.add_song("train", tokenizer.encode("aab" * 60), "x", str(i))
            writer.add_song("val", tokenizer.encode("abb" * 60), "x", str(i))
        writer.commit({}, {})
    return path


def test_overfitting_is_warned_about_and_stops_the_run_with_the_best_weights_kept(tmp_path, capsys):
    data = write_two_pattern_dataset(tmp_path / "data")
    last = run(data, tmp_path / "run", max_steps=300, eval_interval=5, patience=2, early_stop=True, lr=1e-2)
    assert last["overfitting"] and last["step"] < 300
    assert "the model is overfitting, stopping (--early-stop)" in capsys.readouterr().out
    records = read_metrics(tmp_path / "run/metrics.jsonl")
    best = min(records, key=lambda r: r["val_loss"])
    new_lows = [r["val_loss"] < min((x["val_loss"] for x in records[:i]), default=float("inf"))
                for i, r in enumerate(records)]
    assert [r["best"] for r in records] == new_lows and best["step"] < last["step"]
    model, _, _ = load_run(tmp_path / "run", weights="best.safetensors")
    tokens = TokenDataset(data).tokens("val")
    windows = eval_windows(tokens, 16, TINY["eval_batches"] * TINY["batch_size"], 1337, "val")
    assert evaluate_splits(model, {"val": windows}, 4, CPU)["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_the_loop_trains_only_the_parameters_that_require_grad(tiny_dataset, tmp_path):
    dataset = TokenDataset(tiny_dataset)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=dataset.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32))
    model.requires_grad_(False)
    model.transformer.h[1].mlp.requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = []
    config = TrainConfig(max_steps=4, eval_interval=2, batch_size=4, eval_batches=1, precision="fp32")
    last = fit(model, config, dataset.tokens("train"), dataset.tokens("val"), tmp_path / "run",
               lambda kind, record: saved.append((kind, record["step"])), CPU, identity={"note": "adapter"})
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"transformer.h.1.mlp.{m}.{p}" for m in ("c_fc", "c_proj") for p in ("weight", "bias")}
    assert ("latest", 0) in saved and ("latest", 4) in saved and saved.count(("best", 4)) == (last["best"] is True)
    state = torch.load(tmp_path / "run/state.pt", weights_only=True)
    assert set(state["model"]) == changed


def test_wall_clock_budget_ends_the_run_at_the_lr_floor(tiny_dataset, tmp_path):
    last = run(tiny_dataset, tmp_path / "run", max_minutes=0.04, eval_interval=1000, lr=1e-3, min_lr_ratio=0.1)
    assert last["seconds"] >= 0.04 * 60 and last["step"] > 0
    assert last["lr"] == pytest.approx(1e-4, rel=0.02)


def test_bf16_training_lowers_the_loss(tiny_dataset, tmp_path):
    last = run(tiny_dataset, tmp_path / "run", precision="bf16", max_steps=20, eval_interval=20, lr=1e-2)
    first = read_metrics(tmp_path / "run/metrics.jsonl")[0]
    assert last["val_loss"] < first["val_loss"] - 0.3
    state = torch.load(tmp_path / "run/state.pt", weights_only=True)
    assert state["fingerprint"]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in state["model"].values())  # fp32 master weights


def test_two_processes_match_one_process_with_the_same_global_batch(tiny_dataset, tmp_path):
    # AdamW, as in the accumulation test: Muon's bf16 orthogonalization magnifies the all-reduce's rounding.
    settings = {"max_steps": 4, "eval_interval": 2, "batch_size": 2, "dropout": 0.0, "optimizer": "adamw"}
    args = [json.dumps({**TINY, **settings})]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(ROOT / "tests/ddp_worker.py"), str(tiny_dataset), str(tmp_path / "ddp"), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = weights(tmp_path / "ddp", "rank0.safetensors"), weights(tmp_path / "ddp", "rank1.safetensors")
    assert_same_weights(rank0, rank1)
    single = run(tiny_dataset, tmp_path / "single", **{**settings, "batch_size": 4})
    ddp_records, single_records = (read_metrics(tmp_path / d / "metrics.jsonl") for d in ("ddp", "single"))
    assert [r["step"] for r in ddp_records] == [r["step"] for r in single_records] == [0, 2, 4]
    for a, b in zip(ddp_records, single_records):
        assert a["tokens"] == b["tokens"]
        for key in ("loss", "train_loss", "val_loss", "train_acc", "val_acc"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    assert_close_weights(rank0, weights(tmp_path / "single"))
    assert np.isclose(single["val_loss"], ddp_records[-1]["val_loss"], atol=1e-5)


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones(tiny_config):
    torch.manual_seed(0)
    eager, compiled = GPT(tiny_config), GPT(tiny_config)
    compiled.load_state_dict(eager.state_dict())
    compile_blocks(compiled)
    x, y = torch.randint(0, 67, (4, 32)), torch.randint(0, 67, (4, 32))
    runtime = Runtime(torch.device("cpu"), "bf16")
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = []
    for model in (eager, compiled):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        losses.append([train_step(model, optimizer, [(x, y)], runtime, 1.0, scaler)[0].item() for _ in range(3)])
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
    assert losses[1][2] < losses[1][0]
    assert set(compiled.state_dict()) == set(eager.state_dict())  # names unchanged by compiling in place


def test_cli_refuses_bad_settings_with_one_clear_line(tiny_dataset, tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text("learning_rate = 0.1\n")
    result = cli("--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--config", str(toml))
    assert result.returncode == 2
    assert result.stderr.startswith(f"rapgpt train: error: {toml}: unknown setting(s) learning_rate; known ones are")
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--batch-size", "0")
    assert result.returncode == 2 and "batch_size must be at least 1, got 0" in result.stderr
    assert not (tmp_path / "run").exists()


def test_muon_run_lowers_the_loss_and_resumes_bit_identical(tiny_dataset, tmp_path):
    settings = {"optimizer": "muon", "decay_steps": 12, "eval_interval": 4}
    run(tiny_dataset, tmp_path / "straight", max_steps=12, **settings)
    run(tiny_dataset, tmp_path / "split", max_steps=6, **settings)
    run(tiny_dataset, tmp_path / "split", resume=True, max_steps=12, **settings)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))
    records = read_metrics(tmp_path / "straight/metrics.jsonl")
    assert records[-1]["val_loss"] < records[0]["val_loss"] - 0.15
