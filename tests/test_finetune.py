import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import DatasetWriter, TokenDataset
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.errors import DataError
from rapgpt.lora import load_adapted_run
from rapgpt.training.batches import eval_windows
from rapgpt.training.config import FinetuneConfig, PretrainConfig
from rapgpt.training.evaluate import evaluate_splits
from rapgpt.training.finetune import finetune
from rapgpt.training.loop import pretrain
from rapgpt.training.metrics import read_metrics
from rapgpt.training.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = {"threads": 1, "precision": "fp32", "device": "cpu"}
TINY = {"batch_size": 4, "eval_batches": 2, "warmup_steps": 2, **RUNTIME}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    from tests.conftest import write_char_dataset

    root = tmp_path_factory.mktemp("base")
    data = write_char_dataset(root / "data")
    settings = PretrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, max_steps=30, eval_interval=30, **TINY)
    pretrain(data, root / "run", settings)
    return root / "run"


def write_artist_dataset(path: Path, tokenizer: CharTokenizer, line: str = "glim tovo brask\n") -> Path:
    """One artist's songs: a single line sung over and over, which an adapter learns in a few steps."""
    with DatasetWriter(path, tokenizer) as writer:
        for i in range(12):
            writer.add_song("val" if i % 4 == 0 else "train", tokenizer.encode(line * 20), "the artist", f"s{i}")
        writer.commit(stats={}, options={})
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_finetune_trains_the_adapter_alone_from_the_base_models_loss(base_run, tmp_path):
    _, tokenizer, _ = load_run(base_run)
    data = write_artist_dataset(tmp_path / "artist", tokenizer)
    base_weights = digest(base_run / "model.safetensors")
    finetune(base_run, data, tmp_path / "lora", FinetuneConfig(max_steps=40, eval_interval=20, lr=1e-2, **TINY))

    records = read_metrics(tmp_path / "lora" / "metrics.jsonl")
    # Step 0 is the base model itself: LoRA's B starts at zero.
    base, _, _ = load_run(base_run)
    windows = {split: eval_windows(TokenDataset(data).tokens(split), 16, 8, FinetuneConfig().seed, split)
               for split in ("train", "val")}
    expected = evaluate_splits(base, windows, 4, Runtime(torch.device("cpu"), "fp32"))
    assert records[0]["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
    assert records[-1]["val_loss"] < records[0]["val_loss"] - 0.2
    # The base run is untouched, and the saved adapter holds LoRA tensors only.
    assert digest(base_run / "model.safetensors") == base_weights
    adapter = load_file(str(tmp_path / "lora" / "adapter.safetensors"))
    assert adapter and all("lora_" in name for name in adapter)
    assert (tmp_path / "lora" / "best" / "adapter.safetensors").is_file()
    # Loaded onto the base, the adapter gives the loss that the run measured last.
    adapted, _, _ = load_adapted_run(base_run, tmp_path / "lora")
    assert evaluate_splits(adapted, windows, 4, Runtime(torch.device("cpu"), "fp32"))["val_loss"] == pytest.approx(
        records[-1]["val_loss"], rel=1e-5
    )


def test_finetune_resumed_is_bit_identical_to_an_uninterrupted_run(base_run, tmp_path):
    _, tokenizer, _ = load_run(base_run)
    data = write_artist_dataset(tmp_path / "artist", tokenizer)
    straight = FinetuneConfig(max_steps=20, decay_steps=20, eval_interval=10, **TINY)
    finetune(base_run, data, tmp_path / "straight", straight)
    half = FinetuneConfig(max_steps=10, decay_steps=20, eval_interval=10, **TINY)
    finetune(base_run, data, tmp_path / "resumed", half)
    finetune(base_run, data, tmp_path / "resumed", straight, resume=True)
    a = load_file(str(tmp_path / "straight" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_refuses_a_dataset_with_another_tokenizer(base_run, tmp_path):
    other = write_artist_dataset(tmp_path / "other", CharTokenizer.from_texts(["xyz \n"]), line="xyz zyx\n")
    with pytest.raises(DataError, match="--vocab-from"):
        finetune(base_run, other, tmp_path / "lora", FinetuneConfig(max_steps=2, **TINY))
    assert not (tmp_path / "lora").exists()


def test_cli_finetune_takes_targets_and_resumes_with_its_recorded_settings(base_run, tmp_path):
    _, tokenizer, _ = load_run(base_run)
    data = write_artist_dataset(tmp_path / "artist", tokenizer)
    common = ["--base", str(base_run), "--data", str(data), "--out", str(tmp_path / "lora"), "--batch-size", "4",
              "--eval-batches", "2", "--threads", "1", "--precision", "fp32", "--device", "cpu"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rapgpt", "finetune", *common, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, check=False)

    first = cli("--max-steps", "4", "--eval-interval", "2", "--rank", "4", "--targets", "attn.c_attn", "wte")
    assert first.returncode == 0, first.stderr
    assert "trainable parameters" in first.stdout
    config = __import__("json").loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["lora"]["rank"] == 4 and config["lora"]["targets"] == ["attn.c_attn", "wte"]
    refused = cli("--resume", "--max-steps", "6", "--rank", "8")
    assert refused.returncode == 2 and "--rank" in refused.stderr
    resumed = cli("--resume", "--max-steps", "6")
    assert resumed.returncode == 0, resumed.stderr
    assert read_metrics(tmp_path / "lora" / "metrics.jsonl")[-1]["step"] == 6


def test_generate_with_an_adapter_writes_what_the_merged_model_writes(base_run, tmp_path):
    _, tokenizer, _ = load_run(base_run)
    data = write_artist_dataset(tmp_path / "artist", tokenizer)
    finetune(base_run, data, tmp_path / "lora", FinetuneConfig(max_steps=20, eval_interval=20, lr=1e-2, **TINY))

    def rapgpt(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "rapgpt", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rapgpt("merge", "--base", str(base_run), "--adapter", str(tmp_path / "lora"), "--out", str(tmp_path / "merged"))
    greedy = ["--prompt", "glim", "--temperature", "0", "--max-new-tokens", "40"]
    adapted = rapgpt("generate", "--model", str(base_run), "--adapter", str(tmp_path / "lora"), *greedy)
    merged = rapgpt("generate", "--model", str(tmp_path / "merged"), *greedy)
    plain = rapgpt("generate", "--model", str(base_run), *greedy)
    assert adapted == merged and adapted.startswith("glim")
    assert adapted != plain  # the adapter learned the artist's line
