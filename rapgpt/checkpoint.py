"""Run directories: saving a trained model with its configuration and tokenizer, and loading it back.

A run directory holds at least
    model.safetensors   the weights (the tied output head is stored once, as the token embedding);
    config.json         {"model": GPTConfig fields, "tokenizer": tokenizer spec, ...anything the writer adds};
Training adds metrics, plots and resumable state beside them. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rapgpt.data.tokenizer import Tokenizer, tokenizer_from_json
from rapgpt.errors import CheckpointError, RapgptError
from rapgpt.fileio import atomic_write, atomic_write_json, read_json
from rapgpt.model import GPT, GPTConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TIED_KEY = "lm_head.weight"


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights as safetensors stores them: contiguous, the tied head left out."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != TIED_KEY}


def save_weights(path: str | Path, model: GPT) -> None:
    state = model_state(model)
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, refusing a missing or corrupt one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated") from e


def load_weights(path: str | Path, model: GPT) -> None:
    """Load weights into `model`, refusing a file that is corrupt or does not fit the model exactly."""
    state = read_weights(path)
    check_state(state, {k: v.shape for k, v in model_state(model).items()}, str(path))
    model.load_state_dict(state, strict=False)


def model_from_state(config: GPTConfig, state: dict[str, torch.Tensor], source: str) -> GPT:
    """A model holding `state` (as `model_state` gives it), built without the random initialisation that loading
    would overwrite anyway, which takes seconds for a GPT-2-sized model. The tensors become its parameters."""
    with torch.device("meta"):
        model = GPT(config)
    check_state(state, {k: v.shape for k, v in model_state(model).items()}, source)
    model.load_state_dict(state, strict=False, assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # the embedding was replaced: tie the head to it again
    return model


def check_state(state: dict[str, torch.Tensor], shapes: dict[str, torch.Size], source: str) -> None:
    """Refuse weights from `source` whose names or shapes differ from the expected `shapes`."""
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in state.items():
        if tensor.shape != shapes[name]:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(shapes[name])}"
            )


def save_run(run_dir: str | Path, model: GPT, tokenizer: Tokenizer, **extra: Any) -> Path:
    """Write model.safetensors and config.json into `run_dir` (created if needed)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / WEIGHTS, model)
    atomic_write_json(run_dir / CONFIG, {"model": model.config.to_dict(), "tokenizer": tokenizer.to_json(), **extra})
    return run_dir


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir} (train one with `rapgpt train`)")
    config = read_json(run_dir / CONFIG, "run config.json", CheckpointError)
    if "model" not in config or "tokenizer" not in config:
        raise CheckpointError(f"{run_dir / CONFIG} lacks the 'model' or 'tokenizer' section")
    return config


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu", weights: str = WEIGHTS
) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """The model (in eval mode), its tokenizer and the run's config.json."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    try:
        model_config = GPTConfig.from_dict(config["model"])
        tokenizer = tokenizer_from_json(config["tokenizer"])
    except (RapgptError, TypeError, KeyError) as e:
        raise CheckpointError(f"{run_dir / CONFIG} is not a valid run config: {e}") from e
    model = model_from_state(model_config, read_weights(run_dir / weights), str(run_dir / weights))
    return model.to(device).eval(), tokenizer, config
