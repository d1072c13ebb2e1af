"""`rapgpt import-peft`: a PEFT LoRA adapter for GPT-2 as a rapgpt adapter, so that an adapter fine-tuned with PEFT
(on a GPU, say) generates, merges and fine-tunes further with rapgpt.

The base run must hold the weights the adapter was trained on (e.g. the same checkpoint brought in with `rapgpt
import-hf`): a PEFT adapter records no fingerprint of its base, so this cannot be checked. Plain LoRA only: DoRA,
trained biases, per-layer ranks or alphas and fully trained extra modules are refused. rapgpt's output head is
tied to the token embedding, so an adapted `wte` adapts the head as well; that equals PEFT with
`ensure_weight_tying`, or PEFT's merged model, but not PEFT's unmerged model without that setting.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rapgpt.checkpoint import load_run, read_weights
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.fileio import read_json, staged_dir
from rapgpt.interop.gpt2 import adaptable_modules, from_peft_key, shortest_targets
from rapgpt.interop.peft_export import PEFT_CONFIG, PEFT_WEIGHTS
from rapgpt.lora import LoRAConfig, apply_lora, load_lora_state, save_adapter

# PEFT LoraConfig fields whose non-default values change what the adapter computes in ways rapgpt does not.
UNSUPPORTED = ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save", "trainable_token_indices",
               "layers_to_transform", "lora_bias", "target_parameters")


def import_peft(peft_dir: str | Path, base_run: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Convert the PEFT adapter directory `peft_dir`, trained on the model of `base_run`, into the rapgpt adapter
    directory `out_dir` and return its path."""
    peft_dir, base_run, out_dir = Path(peft_dir), Path(base_run), Path(out_dir)
    config_file = peft_dir / PEFT_CONFIG
    spec = read_json(config_file, "PEFT adapter config", CheckpointError)
    if not isinstance(spec, dict) or spec.get("peft_type") != "LORA":
        raise CheckpointError(f"{config_file} is not a PEFT LoRA adapter config (peft_type must be 'LORA')")
    for name in (*UNSUPPORTED, "bias"):
        if spec.get(name) not in (None, False, {}, [], "none"):
            raise CheckpointError(f"{config_file}: {name}={spec[name]!r} is not supported: rapgpt imports plain LoRA")
    lora = peft_lora_state(read_weights(peft_dir / PEFT_WEIGHTS), str(peft_dir / PEFT_WEIGHTS))
    model = load_run(base_run)[0]
    layers = sorted({name.rpartition(".")[0] for name in lora})
    try:
        config = LoRAConfig(
            rank=spec.get("r"), alpha=float(spec.get("lora_alpha", 8)), rslora=bool(spec.get("use_rslora")),
            dropout=float(spec.get("lora_dropout") or 0.0),
            targets=tuple(shortest_targets(layers, adaptable_modules(model.config))),
        )
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config_file} is not a valid LoRA config: {e}") from e
    apply_lora(model, config)
    load_lora_state(model, lora, f"{peft_dir} (on the base run {base_run})")
    with staged_dir(out_dir, force, CheckpointError, keep=[peft_dir, base_run]) as tmp:
        save_adapter(tmp, model, config, base_run)
    return out_dir


def peft_lora_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """PEFT's LoRA tensors under rapgpt's names, in float32. An `lm_head` adapter is accepted only as PEFT's tied
    copy of the token embedding's (see the module docstring)."""
    lora, head = {}, {}
    for key, tensor in state.items():
        mapped = from_peft_key(key)
        if mapped is None:
            raise CheckpointError(f"{source} holds {key}, which is not a LoRA tensor of a GPT-2 layer")
        (head if mapped[0].startswith("lm_head.") else lora)[mapped[0]] = tensor.float()
    tied = {"lm_head.lora_A": lora.get("transformer.wte.lora_B"), "lm_head.lora_B": lora.get("transformer.wte.lora_A")}
    if head and not all(t is not None and k in head and torch.equal(head[k], t.T) for k, t in tied.items()):
        raise CheckpointError(f"{source} adapts lm_head apart from the token embedding: rapgpt ties the output head "
                              "to transformer.wte, so adapt wte (with ensure_weight_tying) instead")
    return lora
