"""`rapgpt serve`: adapters merged into models of their own, the --adapter NAME=RUN2 checks, and the command run as
a user runs it (a subprocess on a free loopback port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from serve_support import make_run, tiny_model

from rapgpt.checkpoint import load_run
from rapgpt.cli import main
from rapgpt.errors import ConfigError
from rapgpt.generate.params import InferenceConfig
from rapgpt.lora import LoRAConfig, apply_lora, load_adapted_run, lora_layers, save_adapter
from rapgpt.serve.server import base_name, load_models, parse_adapters

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A base run and a fine-tuned adapter of it whose update is far from zero."""
    root = tmp_path_factory.mktemp("runs")
    base = make_run(root / "char-tiny")
    model = apply_lora(tiny_model(0), LoRAConfig(rank=4, targets=("attn.c_attn", "mlp.c_fc", "wte")))
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_A.normal_(0, 0.3)
            layer.lora_B.normal_(0, 0.3)
    adapter = save_adapter(root / "verses-lora", model, LoRAConfig(rank=4, targets=("attn.c_attn", "mlp.c_fc", "wte")))
    return base, adapter


def test_each_adapter_is_served_merged_with_the_logits_of_the_adapted_model(runs):
    base_run, adapter_dir = runs
    base, verses = load_models(base_run, {"verses": adapter_dir})
    assert (base.name, base.parent, verses.name, verses.parent) == ("char-tiny", None, "verses", "char-tiny")
    idx = torch.randint(1, base.tokenizer.vocab_size, (3, 40), generator=torch.Generator().manual_seed(0))
    adapted, _, _ = load_adapted_run(base_run, adapter_dir, merge=False)
    plain, _, _ = load_run(base_run)
    with torch.inference_mode():
        assert torch.allclose(verses.model(idx)[0], adapted(idx)[0], atol=1e-4)
        assert torch.allclose(base.model(idx)[0], plain(idx)[0], atol=1e-4)
        assert not torch.allclose(verses.model(idx)[0], base.model(idx)[0], atol=1e-2)


@pytest.mark.parametrize(("spec", "message"), [
    ("verses", "must be NAME=RUN2"), ("=dir", "adapter name ''"), ("verses=", "must be NAME=RUN2"),
    ("two words=dir", "adapter name 'two words'"), ("../up=dir", "adapter name '../up'"),
    ("verses=/no/such/dir", "adapter directory not found"),
])
def test_bad_adapter_specs_are_refused_with_the_fix(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_adapters([spec])


def test_two_adapters_with_one_name_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="two adapters are named 'a'"):
        parse_adapters([f"a={tmp_path}", f"a={tmp_path}"])


def test_the_base_model_is_named_after_its_run_directory(tmp_path):
    assert base_name(tmp_path / "char-10m") == "char-10m"
    assert base_name(tmp_path / "my run (v2)") == "my-run--v2-"
    assert base_name(tmp_path / "runs" / "..") == tmp_path.name


def test_the_command_refuses_a_missing_run_or_a_clashing_adapter_in_one_line(runs, tmp_path, capsys):
    base_run, adapter_dir = runs
    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["serve", "--model", str(base_run), "--adapter", f"char-tiny={adapter_dir}"]) == 2
    assert "is the base model's name" in capsys.readouterr().err
    assert main(["serve", "--model", str(base_run), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str]) -> subprocess.Popen:
    """`rapgpt serve` as a user starts it from a terminal: Ctrl-C (SIGINT) not ignored, even when these tests run
    as a background job, whose children inherit an ignored SIGINT from the shell."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "rapgpt", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
def test_rapgpt_serve_serves_the_front_end_and_both_models_until_interrupted(runs):
    base_run, adapter_dir = runs
    port = _free_port()
    server = _start(["--model", str(base_run), "--adapter", f"verses={adapter_dir}", "--port", str(port),
                     "--max-batch", "4"])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        assert "<div id=\"root\">" in httpx.get(url).text
        models = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        assert models == ["char-tiny", "verses"]
        r = httpx.post(f"{url}/api/generate", json={"prompt": "yo ", "max_new_tokens": 5, "adapter": "verses"},
                       timeout=30)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 130 and "Application shutdown complete" in err, err  # Ctrl-C's usual status
    assert f"open http://127.0.0.1:{port}/ in a browser" in out


@pytest.mark.slow
def test_rapgpt_serve_stops_with_the_reason_when_the_model_cannot_load(runs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    base_run, _ = runs
    (broken / "config.json").write_text((base_run / "config.json").read_text())
    (broken / "model.safetensors").write_bytes((base_run / "model.safetensors").read_bytes()[:100])
    server = _start(["--model", str(broken), "--port", str(_free_port())])
    _, err = server.communicate(timeout=60)
    assert server.returncode == 2
    assert "rapgpt serve: error:" in err and "truncated" in err


@pytest.mark.parametrize(("precision", "quantize"), [("bf16", None), ("fp32", "int8")])
def test_adapters_are_served_at_the_chosen_precision(runs, precision, quantize):
    base_run, adapter_dir = runs
    _, verses = load_models(base_run, {"verses": adapter_dir}, InferenceConfig(precision=precision, quantize=quantize))
    adapted, _, _ = load_adapted_run(base_run, adapter_dir, merge=False)
    idx = torch.randint(1, verses.tokenizer.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got, want = verses.model(idx)[0].float(), adapted(idx)[0]
    assert torch.isfinite(got).all()
    assert (got - want).abs().max() < 0.05 * want.abs().max()  # close to the fp32 adapted model, not the base
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
