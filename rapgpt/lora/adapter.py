"""Adapter files (adapter.safetensors and adapter_config.json, naming the base by a fingerprint of its weights),
and the runs made from them: a base run with its adapter loaded or merged, and a merged run written to disk."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rapgpt.checkpoint import TIED_KEY, load_run, save_run
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import CheckpointError, ConfigError, RapgptError
from rapgpt.fileio import atomic_write, atomic_write_json, read_json
from rapgpt.lora.surgery import apply_lora, load_lora_state, lora_layers, lora_state, merge_lora, unwrap
from rapgpt.model import GPT
from rapgpt.training.config import LoRAConfig

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FORMAT = "rapgpt-lora/1"


def base_state(model: GPT) -> dict[str, torch.Tensor]:
    """The base model's weights under the plain GPT's names, whether or not LoRA layers wrap some of them."""
    wrappers = lora_layers(model)
    if any(layer.merged for layer in wrappers.values()):
        raise ConfigError("LoRA layers are merged into the base weights: unmerge them to read the base")
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("lora_A", "lora_B") or key == TIED_KEY:
            continue
        owner, _, attr = prefix.rpartition(".")
        state[f"{owner}.{leaf}" if attr == "base" and owner in wrappers else key] = tensor
    return state


def base_fingerprint(model: GPT) -> str:
    """sha256 over the base weights' names, dtypes, shapes and bytes, in name order: equal only for equal bases."""
    h = hashlib.sha256()
    for name, tensor in sorted(base_state(model).items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_adapter(out_dir: str | Path, model: GPT, config: LoRAConfig, base_run: str | Path | None = None) -> Path:
    """Write adapter.safetensors, then adapter_config.json (last, so a complete config means a complete adapter)."""
    out_dir = Path(out_dir)
    state = {k: v.contiguous() for k, v in lora_state(model).items()}
    if not state:
        raise ConfigError("the model has no LoRA layers to save: call apply_lora first")
    spec = {
        "format": ADAPTER_FORMAT,
        "lora": config.to_dict(),
        "layers": sorted(lora_layers(model)),
        "base_fingerprint": base_fingerprint(model),
        # Where to find the base by default; the fingerprint decides whether a base fits.
        "base_run": str(Path(base_run).resolve()) if base_run is not None else None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / ADAPTER_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_json(out_dir / ADAPTER_CONFIG, spec)
    return out_dir


def read_adapter_config(adapter_dir: str | Path) -> tuple[LoRAConfig, dict[str, Any]]:
    """The adapter's `LoRAConfig` and its whole adapter_config.json, checked."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise CheckpointError(f"adapter directory not found: {adapter_dir} (create one with `rapgpt finetune`)")
    spec = read_json(adapter_dir / ADAPTER_CONFIG, "adapter config", CheckpointError)
    if not isinstance(spec, dict) or spec.get("format") != ADAPTER_FORMAT:
        raise CheckpointError(f"{adapter_dir / ADAPTER_CONFIG} is not a rapgpt LoRA adapter config "
                              f"(expected format {ADAPTER_FORMAT!r})")
    try:
        return LoRAConfig.from_dict(spec["lora"]), spec
    except (RapgptError, TypeError, KeyError) as e:
        raise CheckpointError(f"{adapter_dir / ADAPTER_CONFIG} is not a valid adapter config: {e}") from e


def load_adapter(model: GPT, adapter_dir: str | Path) -> GPT:
    """Adapt the plain base `model` in place with the saved adapter, refusing a base it was not trained on."""
    adapter_dir = Path(adapter_dir)
    config, spec = read_adapter_config(adapter_dir)
    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"adapter weights not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated") from e
    if lora_layers(model):
        raise ConfigError("the model already has LoRA layers: load an adapter onto the plain base model")
    if base_fingerprint(model) != spec.get("base_fingerprint"):
        hint = f" (it was trained on {spec['base_run']})" if spec.get("base_run") else ""
        raise CheckpointError(f"adapter {adapter_dir} was trained on a different base model{hint}: its base "
                              "fingerprint does not match these weights; load it onto the base it was trained from")
    apply_lora(model, config)
    try:
        load_lora_state(model, state, str(path))
    except CheckpointError:
        unwrap(model)  # leave the caller's model as it was given
        raise
    return model


def recorded_base_run(adapter_dir: str | Path) -> str:
    """The base run directory the adapter was saved with."""
    base_run = read_adapter_config(adapter_dir)[1].get("base_run")
    if not base_run:
        raise CheckpointError(f"adapter {adapter_dir} does not record its base run: name the base run directory")
    return base_run


def load_adapted_run(
    base_run: str | Path | None, adapter_dir: str | Path, merge: bool = False, device: str | torch.device = "cpu"
) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """The base run's model with the adapter loaded (merged into a plain GPT if `merge`), in eval mode, its
    tokenizer, and the base run's config with the adapter's config under "adapter".

    Without `base_run`, the base run recorded in the adapter is used (the fingerprint still has the last word).
    """
    model, tokenizer, config = load_run(base_run if base_run is not None else recorded_base_run(adapter_dir))
    load_adapter(model, adapter_dir)
    if merge:
        merge_lora(model)
    return model.to(device).eval(), tokenizer, {**config, "adapter": read_adapter_config(adapter_dir)[1]}


def merge_run(
    base_run: str | Path | None, adapter_dir: str | Path, out_dir: str | Path, force: bool = False
) -> Path:
    """Merge an adapter into its base (by default the base run the adapter records) and save the result as a
    standalone run directory."""
    out_dir = Path(out_dir)
    base_run = base_run if base_run is not None else recorded_base_run(adapter_dir)
    for name, other in (("base", base_run), ("adapter", adapter_dir)):
        if out_dir.resolve() == Path(other).resolve():
            raise ConfigError(f"--out {out_dir} is the {name} directory: choose a new directory for the merged run")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"output directory already exists and is not empty: {out_dir} (pass --force to replace)")
    model, tokenizer, config = load_adapted_run(base_run, adapter_dir, merge=True)
    merged_from = {"base_run": str(base_run), "adapter": str(adapter_dir), "adapter_config": config["adapter"]}
    return save_run(out_dir, model, tokenizer, merged_from=merged_from)
