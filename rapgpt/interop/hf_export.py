"""`rapgpt export --format hf`: a run as a directory that Hugging Face `transformers` loads offline.

The directory holds config.json and model.safetensors for `AutoModelForCausalLM.from_pretrained`, the tokenizer
files for `AutoTokenizer.from_pretrained` (see `rapgpt.interop.hf_tokenizer`) and a model card, README.md: the
Hugging Face GPT-2 checkpoint format, which serving tools such as vLLM and TGI, and llama.cpp's converter, read.
A fine-tuned model is exported with its LoRA adapter merged into the weights, the form those tools serve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from rapgpt.checkpoint import load_run
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.fileio import atomic_write_bytes, atomic_write_json, staged_dir
from rapgpt.interop.gpt2 import hf_config, to_hf_state
from rapgpt.interop.hf_tokenizer import save_hf_tokenizer
from rapgpt.interop.model_card import model_card
from rapgpt.lora import load_adapted_run
from rapgpt.model import GPT


def export_hf(
    run: str | Path, out_dir: str | Path, *, adapter: str | Path | None = None, merge: bool = False,
    force: bool = False,
) -> Path:
    """Export the run directory `run` to the Hugging Face directory `out_dir` and return its path; with `adapter`
    and `merge`, the run with that LoRA adapter merged into its weights."""
    if adapter is not None and not merge:
        raise ConfigError("a Hugging Face model directory holds no separate adapter: pass --merge to fold the adapter "
                          "into the exported weights, or export the adapter itself with --format peft")
    run, out_dir = Path(run), Path(out_dir)
    with staged_dir(out_dir, force, CheckpointError, keep=[run] + ([adapter] if adapter is not None else [])) as tmp:
        if adapter is None:
            model, tokenizer, run_config = load_run(run)
        else:
            model, tokenizer, run_config = load_adapted_run(run, adapter, merge=True)
        save_hf(tmp, model, tokenizer, run_config, run)
    return out_dir


def save_hf(out_dir: Path, model: GPT, tokenizer: Tokenizer, run_config: dict[str, Any], run_dir: Path) -> None:
    """Write model, tokenizer and model card into `out_dir`; `run_config` and `run_dir` feed the card."""
    atomic_write_json(out_dir / "config.json", hf_config(model.config, tokenizer.eot_id))
    save_file(to_hf_state(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    save_hf_tokenizer(out_dir, tokenizer, model.config.block_size)
    atomic_write_bytes(out_dir / "README.md", model_card(run_dir, run_config, model, tokenizer).encode())
