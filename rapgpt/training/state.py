"""The resumable state of a run (`state.pt`): one file, written atomically, checked before anything is loaded.

It holds all that resuming needs: the trainable weights, the optimizer (and loss scaler) state, the progress, the
overfitting watch and every process's RNG state, with a fingerprint of the run (model, tokenizer, data, settings)
and a digest of its own content. Being one file, it is always consistent with itself; the digest catches
corruption that the zip container lets through, and the fingerprint catches a state from another run.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from rapgpt.errors import CheckpointError
from rapgpt.fileio import atomic_write

STATE = "state.pt"
FORMAT_VERSION = 1


def content_digest(obj: Any) -> str:
    """SHA-256 over a nested structure of dicts, lists, tensors and plain values, in a canonical order."""
    h = hashlib.sha256()

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"tensor{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            h.update(b"{")
            for key in sorted(x, key=repr):
                h.update(repr(key).encode())
                visit(x[key])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for item in x:
                visit(item)
            h.update(b"]")
        else:
            h.update(repr(x).encode())

    visit(obj)
    return h.hexdigest()


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    payload = {"format_version": FORMAT_VERSION, **state}
    payload["digest"] = content_digest(payload)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_state(path: str | Path) -> dict[str, Any]:
    """The state saved at `path`, refused with a `CheckpointError` when missing, unreadable or altered."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no resumable state at {path}: the run stopped before its first checkpoint, start it afresh"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be resumed ({str(e)[:120]})") from e
    if not isinstance(state, dict) or "digest" not in state:
        raise CheckpointError(f"{path} is not a rapgpt training state")
    digest = state.pop("digest")
    if content_digest(state) != digest:
        raise CheckpointError(f"{path} is corrupt: its content does not match the digest it was saved with")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has state format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    return state


def check_fingerprint(path: str | Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a state whose run differs from the one being resumed, naming what differs. A setting that a later
    version added, at its default of None (off), is no difference: the run trained without it."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    if saved == current:
        return
    differences = []
    for section in sorted(set(saved) | set(current)):
        a, b = saved.get(section), current.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            differences += [f"{section}.{k}: saved {_short(a.get(k))}, now {_short(b.get(k))}" for k in keys]
        elif a != b:
            differences.append(f"{section}: saved {_short(a)}, now {_short(b)}")
    if not differences:
        return
    raise CheckpointError(
        f"{path} belongs to a different run ({'; '.join(differences[:4])}): resume with the settings, dataset "
        "and number of processes the run was started with, or start a new run in another directory"
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."

