"""`rapgpt import-hf NAME`: Hub ids resolved through huggingface_hub's cache, offline, and from a fake Hub on loopback.

The cache is laid out here as huggingface_hub lays it out (models--org--name/blobs, snapshots/<commit>/ links to the
blobs, refs/<branch or tag> holding the commit), with a tiny GPT-2 saved by transformers. The fake Hub answers the
two requests hf_hub_download makes (HEAD, then GET of /<repo>/resolve/<revision>/<file>) and logs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest
from hf_support import assert_same_logits

from rapgpt.data.dataset import DatasetWriter
from rapgpt.data.tokenizer import GPT2Tokenizer
from rapgpt.errors import CheckpointError
from rapgpt.interop.hf_hub import HubModel, parse_hub_id
from rapgpt.interop.hf_import import import_hf
from rapgpt.training.config import FinetuneConfig
from rapgpt.training.finetune import finetune
from rapgpt.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[2]
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def saved_files(hf_model, where: Path) -> dict[str, bytes]:
    """The files transformers writes for `hf_model`, by name."""
    hf_model.save_pretrained(where)
    return {p.name: p.read_bytes() for p in where.iterdir()}


def lay_out_cache(hub_cache: Path, repo_id: str, commit: str, files: dict[str, bytes], refs: tuple[str, ...]) -> None:
    """Put `files` at `commit` of `repo_id` into a Hugging Face hub cache, with `refs` pointing at the commit."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def rapgpt(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command line in a fresh process, so that huggingface_hub reads HF_HOME, HF_HUB_OFFLINE and HF_ENDPOINT
    from the environment as it does for a user."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return subprocess.run([sys.executable, "-m", "rapgpt", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False, env={**clean, **env})


@pytest.fixture
def offline_cache(monkeypatch, tmp_path) -> Path:
    """An empty hub cache that huggingface_hub, in this process, uses offline."""
    cache = tmp_path / "home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize("name, expected", [
    ("gpt2", HubModel("gpt2")),
    ("distilgpt2", HubModel("distilgpt2")),
    ("someone/tiny-gpt2@v1.0", HubModel("someone/tiny-gpt2", "v1.0")),
    ("someone/tiny-gpt2@refs/pr/3", HubModel("someone/tiny-gpt2", "refs/pr/3")),
    ("./tiny-gpt2", None), ("/abs/tiny-gpt2", None), ("a/b/c", None), ("gpt2@", None), ("two--dashes", None),
])
def test_hub_ids_are_told_apart_from_paths(name, expected):
    assert parse_hub_id(name) == expected


@pytest.mark.slow
def test_a_cached_hub_id_imports_offline_through_the_command_line(tmp_path, hf_gpt2):
    lay_out_cache(tmp_path / "home" / "hub", "tiny-gpt2", COMMIT_A, saved_files(hf_gpt2, tmp_path / "saved"),
                  refs=("main",))
    done = rapgpt("import-hf", "tiny-gpt2", "--out", str(tmp_path / "run"),
                  env={"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    config = assert_same_logits(hf_gpt2, tmp_path / "run")
    assert config["imported_from"]["hub"] == {"repo_id": "tiny-gpt2", "revision": "main", "commit": COMMIT_A}


@pytest.mark.slow
def test_offline_with_nothing_cached_says_so_in_one_line(tmp_path):
    done = rapgpt("import-hf", "someone/absent-gpt2", "--out", str(tmp_path / "run"),
                  env={"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "someone/absent-gpt2 is not in the Hugging Face cache" in done.stderr
    assert "unset HF_HUB_OFFLINE" in done.stderr and str(tmp_path / "home" / "hub") in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_revision_after_the_at_picks_that_branch_tag_or_commit(offline_cache, tmp_path, hf_gpt2, randomize):
    lay_out_cache(offline_cache, "someone/tiny", COMMIT_A, saved_files(hf_gpt2, tmp_path / "a"), refs=("main",))
    retrained = randomize(type(hf_gpt2)(hf_gpt2.config), seed=1)
    lay_out_cache(offline_cache, "someone/tiny", COMMIT_B, saved_files(retrained, tmp_path / "b"), refs=("v1",))
    assert_same_logits(hf_gpt2, import_hf("someone/tiny", tmp_path / "main"))
    assert_same_logits(retrained, import_hf("someone/tiny@v1", tmp_path / "v1"))
    assert_same_logits(retrained, import_hf(f"someone/tiny@{COMMIT_B}", tmp_path / "commit"))
    with pytest.raises(CheckpointError, match="someone/tiny@v2 is not in the Hugging Face cache"):
        import_hf("someone/tiny@v2", tmp_path / "v2")


def test_a_cache_without_the_weights_is_named_as_incomplete(offline_cache, tmp_path, hf_gpt2):
    files = saved_files(hf_gpt2, tmp_path / "saved")
    del files["model.safetensors"]
    lay_out_cache(offline_cache, "tiny-gpt2", COMMIT_A, files, refs=("main",))
    with pytest.raises(CheckpointError, match=r"only partly in \(the weights missing\)"):
        import_hf("tiny-gpt2", tmp_path / "run")


def test_a_missing_path_is_not_looked_up_on_the_hub(offline_cache, tmp_path):
    for path in (tmp_path / "nowhere", "./nowhere"):
        with pytest.raises(CheckpointError, match="checkpoint directory not found"):
            import_hf(path, tmp_path / "run")


class FakeHub:
    """A Hub on loopback serving model repositories {repo_id: {file name: bytes}} at one commit each; the `gated`
    ones refuse a client without access, as the Hub does."""

    def __init__(self, repos: dict[str, dict[str, bytes]], commit: str, gated: tuple[str, ...] = ()):
        self.repos, self.commit, self.gated, self.downloads = repos, commit, gated, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                repo_id, _, rest = self.path.lstrip("/").partition("/resolve/")
                revision, _, name = rest.partition("/")
                files = hub.repos.get(repo_id)
                if repo_id in hub.gated:
                    return self.refuse(403, "GatedRepo")
                if files is None:
                    return self.refuse(401, "RepoNotFound")
                if revision not in ("main", hub.commit):
                    return self.refuse(404, "RevisionNotFound")
                if name not in files:
                    return self.refuse(404, "EntryNotFound")
                data = files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    hub.downloads.append(name)
                    self.wfile.write(data)

            def refuse(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @contextmanager
    def running(self) -> Iterator[str]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{self.server.server_address[1]}"
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(10)


@pytest.mark.slow
def test_a_hub_id_downloads_only_what_it_reads_then_works_offline(tmp_path, hf_gpt2):
    files = saved_files(hf_gpt2, tmp_path / "saved")
    extra = {"pytorch_model.bin": b"the same weights, pickled", "tf_model.h5": b"TensorFlow's copy", "README.md": b"#"}
    hub = FakeHub({"someone/tiny-gpt2": {**files, **extra}}, COMMIT_A, gated=("someone/gated-gpt2",))
    home = tmp_path / "home"
    with hub.running() as endpoint:
        done = rapgpt("import-hf", "someone/tiny-gpt2", "--out", str(tmp_path / "run"),
                      env={"HF_HOME": str(home), "HF_ENDPOINT": endpoint})
        unknown = rapgpt("import-hf", "someone/nothing-here", "--out", str(tmp_path / "run2"),
                         env={"HF_HOME": str(home), "HF_ENDPOINT": endpoint})
        gated = rapgpt("import-hf", "someone/gated-gpt2", "--out", str(tmp_path / "run2"),
                       env={"HF_HOME": str(home), "HF_ENDPOINT": endpoint})
    assert done.returncode == 0, done.stderr
    assert sorted(hub.downloads) == ["config.json", "model.safetensors"]
    assert assert_same_logits(hf_gpt2, tmp_path / "run")["imported_from"]["hub"]["commit"] == COMMIT_A
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "someone/nothing-here is neither a directory nor a model on the Hugging Face Hub" in unknown.stderr
    assert gated.returncode == 2 and gated.stderr.count("\n") == 1
    assert "someone/gated-gpt2 is gated on the Hub" in gated.stderr and "HF_TOKEN" in gated.stderr

    again = rapgpt("import-hf", "someone/tiny-gpt2", "--out", str(tmp_path / "run3"),
                   env={"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0, again.stderr
    assert_same_logits(hf_gpt2, tmp_path / "run3")


@pytest.mark.slow
def test_the_vocabulary_on_the_hub_is_checked(tmp_path, hf_gpt2):
    files = saved_files(hf_gpt2, tmp_path / "saved")
    vocab = {f"tok{i}": i for i in range(50257)}
    hub = FakeHub({"someone/other-vocab": {**files, "vocab.json": json.dumps(vocab).encode()}}, COMMIT_A)
    with hub.running() as endpoint:
        done = rapgpt("import-hf", "someone/other-vocab", "--out", str(tmp_path / "run"),
                      env={"HF_HOME": str(tmp_path / "home"), "HF_ENDPOINT": endpoint})
    assert done.returncode == 2 and "not GPT-2's vocabulary" in done.stderr
    assert sorted(hub.downloads) == ["config.json", "vocab.json"]  # refused before the weights were downloaded


@pytest.mark.slow
def test_a_model_from_the_hub_fine_tunes_with_lora_on_one_artists_bpe_songs(offline_cache, tmp_path, hf_gpt2):
    """The README's path: import GPT-2 by name, then train a LoRA adapter on songs tokenized with GPT-2's BPE."""
    lay_out_cache(offline_cache, "gpt2", COMMIT_A, saved_files(hf_gpt2, tmp_path / "saved"), refs=("main",))
    base = import_hf("gpt2", tmp_path / "gpt2")
    tokenizer = GPT2Tokenizer()
    with DatasetWriter(tmp_path / "artist", tokenizer) as writer:
        for i in range(8):
            writer.add_song("val" if i % 4 == 0 else "train", tokenizer.encode("neon rain on the avenue\n" * 12),
                            "the artist", f"s{i}")
        writer.commit(stats={}, options={})
    settings = FinetuneConfig(max_steps=30, eval_interval=30, lr=3e-2, batch_size=4, eval_batches=2, warmup_steps=2,
                              threads=1, precision="fp32", device="cpu")
    finetune(base, tmp_path / "artist", tmp_path / "lora", settings)
    first, last = read_metrics(tmp_path / "lora" / "metrics.jsonl")
    assert last["val_loss"] < first["val_loss"] - 0.1  # the adapter learns the artist's line
    assert (tmp_path / "lora" / "adapter.safetensors").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()  # the base's weights stay in runs/gpt2
