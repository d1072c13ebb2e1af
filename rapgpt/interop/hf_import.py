"""`rapgpt import-hf`: a Hugging Face GPT-2 checkpoint becomes a rapgpt run.

The checkpoint is a directory on disk or a Hub id such as `gpt2` or `user/model@revision`, which `hf_hub` fetches
into (or finds in) the Hugging Face cache. The directory holds config.json and the weights as model.safetensors,
as shards listed in model.safetensors.index.json, or as pytorch_model.bin (or its shards). Pickled weights are read
with `torch.load(weights_only=True)`, which refuses to build anything but tensors and plain containers, so a pickle
carrying code is rejected rather than run. The tokenizer is GPT-2's BPE.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rapgpt.checkpoint import model_from_state, save_run
from rapgpt.data.tokenizer import GPT2Tokenizer, gpt2_bpe_files
from rapgpt.errors import CheckpointError
from rapgpt.fileio import read_json, staged_dir
from rapgpt.interop.gpt2 import from_hf_state, gpt_config

if TYPE_CHECKING:
    from rapgpt.interop.hf_hub import Snapshot

# Weight files in the order transformers prefers them: (single file, index of shards).
WEIGHT_FILES = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)


def import_hf(source: str | Path, out_run: str | Path, *, force: bool = False) -> Path:
    """Convert the GPT-2 checkpoint `source` (a directory, or a Hub id that is not one) into the rapgpt run directory
    `out_run` and return its path."""
    hf_dir, snapshot = locate_checkpoint(source)
    out_run = Path(out_run)
    with staged_dir(out_run, force, CheckpointError, keep=[hf_dir]) as tmp:
        config_file = hf_dir / "config.json"
        hf = read_json(config_file, "Hugging Face config.json", CheckpointError)
        if not isinstance(hf, dict):
            raise CheckpointError(f"{config_file} is not a model configuration (a JSON object)")
        config = gpt_config(hf, str(config_file))
        tokenizer = GPT2Tokenizer()
        if config.vocab_size != tokenizer.vocab_size:
            raise CheckpointError(
                f"{config_file}: vocab_size is {config.vocab_size}, but GPT-2's tokenizer has {tokenizer.vocab_size} "
                "tokens: rapgpt imports models that use GPT-2's vocabulary unchanged (no added tokens)"
            )
        check_gpt2_vocabulary(hf_dir)
        files, state = read_hf_weights(hf_dir)
        source = ", ".join(str(hf_dir / f) for f in files)
        tied = hf.get("tie_word_embeddings", True)
        model = model_from_state(config, from_hf_state(state, config, tied, source), source)
        imported_from = {"format": "hf", "path": str(hf_dir.resolve()), "files": files}
        if snapshot is not None:
            imported_from["hub"] = snapshot.provenance()
        save_run(tmp, model, tokenizer, imported_from=imported_from)
    return out_run


def locate_checkpoint(source: str | Path) -> tuple[Path, Snapshot | None]:
    """The checkpoint directory `source` names, and the Hub snapshot it is when `source` is a Hub id."""
    path = Path(source)
    if path.is_dir():
        return path, None
    try:
        from rapgpt.interop.hf_hub import fetch_checkpoint, parse_hub_id
    except ImportError as e:  # huggingface_hub is missing
        raise CheckpointError(f"Hugging Face checkpoint directory not found: {path} (to download a model from the "
                              "Hub by its name, install huggingface_hub: pip install 'rapgpt[hub]')") from e
    model = None if path.exists() else parse_hub_id(str(source))
    if model is None:
        raise CheckpointError(f"Hugging Face checkpoint directory not found: {path}")
    snapshot = fetch_checkpoint(model)
    return snapshot.directory, snapshot


def check_gpt2_vocabulary(hf_dir: Path) -> None:
    """Refuse a checkpoint whose own tokenizer files show a vocabulary other than GPT-2's."""
    vocab = None
    if (hf_dir / "vocab.json").is_file():
        vocab = read_json(hf_dir / "vocab.json", "tokenizer vocab.json", CheckpointError)
    elif (hf_dir / "tokenizer.json").is_file():
        spec = read_json(hf_dir / "tokenizer.json", "tokenizer.json", CheckpointError)
        vocab = spec.get("model", {}).get("vocab", {}) if isinstance(spec, dict) else spec
    if vocab is not None and vocab != json.loads(gpt2_bpe_files()[0].read_text(encoding="utf-8")):
        raise CheckpointError(
            f"the tokenizer files in {hf_dir} are not GPT-2's vocabulary: rapgpt imports models that use GPT-2's BPE"
        )


def read_hf_weights(hf_dir: Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The names of the weight files read and every tensor in them."""
    for single, index in WEIGHT_FILES:
        if (hf_dir / single).is_file():
            return [single], read_weight_file(hf_dir / single)
        if (hf_dir / index).is_file():
            shards = shard_names(hf_dir / index)
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_weight_file(hf_dir / shard))
            return shards, state
    names = ", ".join(name for pair in WEIGHT_FILES for name in pair)
    raise CheckpointError(f"no weights in {hf_dir}: expected one of {names}")


def listed_shards(index_file: Path) -> list[str]:
    """The shard files an index lists."""
    index = read_json(index_file, "weights index", CheckpointError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_file} has no weight_map listing the shard of each tensor")
    return sorted(set(weight_map.values()))


def shard_names(index_file: Path) -> list[str]:
    """The shard files an index lists, each checked to exist."""
    shards = listed_shards(index_file)
    for shard in shards:
        if not (index_file.parent / shard).is_file():
            raise CheckpointError(f"shard {shard} listed in {index_file} is missing")
    return shards


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in one safetensors file or one weights-only PyTorch pickle, refusing anything else."""
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f"{path} is not a file of plain weights and was not loaded ({unpickling_reason(e)}); if you trust it, "
            "re-save its tensors as model.safetensors"
        ) from e
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a mapping of tensor names to tensors, so it is not a checkpoint")
    return state


def unpickling_reason(error: Exception) -> str:
    """The one line of torch's long weights-only error that says what the file held, e.g. an unsupported global."""
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    line = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return line.split(". ")[0].rstrip(".")
