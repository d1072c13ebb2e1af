"""`rapgpt export --format peft`: a rapgpt LoRA adapter as a PEFT adapter directory.

The directory holds adapter_config.json and adapter_model.safetensors, which
`peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), DIR)` loads offline onto the base run
exported with `rapgpt export BASE_RUN --format hf`, giving the logits of rapgpt's adapted model. Key names and
layouts are mapped by `rapgpt.interop.gpt2`.

An adapted token embedding (`wte`) needs one more setting. rapgpt's output head, tied to the embedding, computes
its logits against the adapted matrix; a PEFT model adapts only the layers it targets, so its head would keep the
base matrix and give other logits (until merged). The export therefore also targets `lm_head` with
`ensure_weight_tying`, with which PEFT (0.18 and later) gives the head the embedding's own LoRA tensors, transposed,
as rapgpt does; the head's tensors are saved as well, as PEFT saves them. Older PEFT versions ignore the setting
and leave the head unadapted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from rapgpt.checkpoint import load_run, model_state
from rapgpt.errors import CheckpointError
from rapgpt.fileio import atomic_write, atomic_write_json, staged_dir
from rapgpt.interop.gpt2 import adaptable_modules, from_hf_state, shortest_targets, to_peft_key
from rapgpt.interop.hf_import import read_hf_weights
from rapgpt.lora import (
    LoRAConfig,
    LoRAEmbedding,
    TiedLoRAHead,
    load_adapter,
    lora_layers,
    lora_state,
    read_adapter_config,
    recorded_base_run,
)
from rapgpt.model import GPT

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"


def export_peft(
    adapter_dir: str | Path, out_dir: str | Path, base_run: str | Path | None = None, *,
    base_model: str | None = None, force: bool = False,
) -> Path:
    """Export the adapter in `adapter_dir` (trained on `base_run`, by default the base run it records) to the PEFT
    directory `out_dir`. `base_model` is what adapter_config.json names as the base (`base_model_name_or_path`, used
    by `AutoPeftModelForCausalLM`): the base run's Hugging Face export, checked to hold the base's weights when it
    is a local directory, or a hub name."""
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    base_run = Path(base_run if base_run is not None else recorded_base_run(adapter_dir))
    with staged_dir(out_dir, force, CheckpointError, keep=[adapter_dir, base_run]) as tmp:
        model = load_run(base_run)[0]
        if base_model is not None and Path(base_model).is_dir():
            check_base_model(Path(base_model), model, base_run)
            base_model = str(Path(base_model).resolve())
        load_adapter(model, adapter_dir)
        save_peft(tmp, model, read_adapter_config(adapter_dir)[0], base_model)
    return out_dir


def save_peft(out_dir: Path, model: GPT, config: LoRAConfig, base_model: str | None) -> None:
    """Write the adapted `model`'s LoRA tensors and `config` as PEFT's adapter_model.safetensors and
    adapter_config.json into `out_dir`."""
    embeddings = {name for name, layer in lora_layers(model).items() if isinstance(layer, LoRAEmbedding)}
    lora = lora_state(model)
    if isinstance(model.lm_head, TiedLoRAHead):  # the head's tensors, as PEFT saves them when tying the head
        lora |= {"lm_head.lora_A": lora["transformer.wte.lora_B"].T, "lm_head.lora_B": lora["transformer.wte.lora_A"].T}
    state = {to_peft_key(name, name.rpartition(".")[0] in embeddings): tensor.contiguous()
             for name, tensor in lora.items()}
    atomic_write(out_dir / PEFT_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_json(out_dir / PEFT_CONFIG, peft_config(model, config, base_model))


def peft_config(model: GPT, config: LoRAConfig, base_model: str | None) -> dict[str, Any]:
    """PEFT's LoraConfig for the adapted `model`, as adapter_config.json holds it."""
    targets = shortest_targets(sorted(lora_layers(model)), adaptable_modules(model.config))
    tied = isinstance(model.lm_head, TiedLoRAHead)
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.rank,
        "lora_alpha": int(config.alpha) if float(config.alpha).is_integer() else config.alpha,
        "use_rslora": config.rslora,
        "lora_dropout": config.dropout,
        "target_modules": targets + (["lm_head"] if tied else []),  # see the module docstring
        "ensure_weight_tying": tied,
        "fan_in_fan_out": True,  # GPT-2's projections are Conv1D layers
        "bias": "none",
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    }


def check_base_model(hf_dir: Path, base: GPT, base_run: Path) -> None:
    """Refuse a Hugging Face directory whose weights are not those of the adapter's base run."""
    _, state = read_hf_weights(hf_dir)
    theirs = from_hf_state(state, base.config, True, str(hf_dir))
    ours = model_state(base)
    if any(not v.equal(ours[k]) if k in ours else v.any() for k, v in theirs.items()):  # absent biases are zero
        raise CheckpointError(f"{hf_dir} does not hold the weights of the adapter's base run {base_run}: pass the "
                              f"directory written by `rapgpt export {base_run} --format hf`")
