"""The one correspondence between rapgpt's `GPT` and Hugging Face's `GPT2LMHeadModel`, used in both directions.

Parameter names are the same on both sides, since rapgpt's modules carry GPT-2's names. Two things differ: GPT-2
stores its projections as `Conv1D` weights, shaped (in, out), where rapgpt's `nn.Linear` stores (out, in); and
GPT-2 always has biases, which a rapgpt model built with `bias=False` lacks (zero biases are exactly equivalent).
Both tie the output head to the token embedding and store it once.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import torch

from rapgpt.checkpoint import check_state, model_state
from rapgpt.errors import CheckpointError, ConfigError
from rapgpt.model import GPT, GPTConfig

# GPT-2's Conv1D weights. Transposing is its own inverse, so one rule converts in both directions.
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Causal-mask buffers that older transformers versions saved beside the weights: not parameters.
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
PREFIX = "transformer."
LM_HEAD = "lm_head.weight"
ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")

# GPTConfig field -> GPT2Config field. A field absent from a config.json takes GPT2Config's default, which is
# GPTConfig's default too (both default to the 124M GPT-2).
SIZES = {"vocab_size": "vocab_size", "block_size": "n_positions", "n_layer": "n_layer", "n_head": "n_head",
         "n_embd": "n_embd"}
# GPT2Config settings that rapgpt's model implements: the value export writes (also GPT2Config's default when the
# field is absent) and the values import accepts.
SETTINGS: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "activation_function": ("gelu_new", ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")),  # GELU, tanh approximation
    "layer_norm_epsilon": (1e-5, (1e-5,)),
    "scale_attn_weights": (True, (True,)),
    "scale_attn_by_inverse_layer_idx": (False, (False,)),
    "add_cross_attention": (False, (False,)),
}


def hf_config(config: GPTConfig, eot_id: int) -> dict[str, Any]:
    """The config.json of a `GPT2LMHeadModel` computing what a rapgpt model with `config` computes."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        **{hf: getattr(config, ours) for ours, hf in SIZES.items()},
        "n_ctx": config.block_size,  # the context length under its older name, which some converters read
        "n_inner": None,  # 4 * n_embd
        **{name: written for name, (written, _) in SETTINGS.items()},
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "tie_word_embeddings": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": "float32",
    }


def gpt_config(hf: dict[str, Any], source: str) -> GPTConfig:
    """The GPTConfig of a GPT-2 config.json, refusing other architectures and settings rapgpt does not implement."""
    model_type, architectures = hf.get("model_type"), hf.get("architectures") or []
    if model_type != "gpt2" or any(a not in ARCHITECTURES for a in architectures):
        raise CheckpointError(
            f"{source} describes a {model_type!r} model ({', '.join(architectures) or 'no architectures'}): "
            f"rapgpt imports GPT-2 language models only ({' or '.join(ARCHITECTURES)})"
        )
    for name, (default, accepted) in SETTINGS.items():
        if hf.get(name, default) not in accepted:
            raise CheckpointError(
                f"{source}: {name}={hf[name]!r} is not supported: rapgpt's GPT-2 needs "
                f"{' or '.join(map(repr, accepted))}"
            )
    n_embd = hf.get("n_embd", GPTConfig.n_embd)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        raise CheckpointError(f"{source}: n_inner={hf['n_inner']} is not supported: rapgpt's MLP is 4 * n_embd wide")
    try:
        return GPTConfig(
            **{ours: hf[theirs] for ours, theirs in SIZES.items() if theirs in hf},
            dropout=hf.get("resid_pdrop", 0.1),
        )
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{source} is not a valid GPT-2 config: {e}") from e


def swap_conv1d(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Conv1D weights transposed, the rest as is: rapgpt -> GPT-2 and GPT-2 -> rapgpt alike."""
    return {k: v.t() if k.endswith(CONV1D) else v for k, v in state.items()}


def hf_shapes(config: GPTConfig) -> dict[str, torch.Size]:
    """Every tensor in a GPT2LMHeadModel checkpoint of this size (the tied head aside), shaped as GPT-2 has it."""
    with torch.device("meta"):
        model = GPT(replace(config, bias=True))
    return {k: v.shape for k, v in swap_conv1d(model_state(model)).items()}


def full_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights in rapgpt's layout, the tied head left out, with zero biases where GPT-2 has biases and
    the model has none (a model built with `bias=False`)."""
    state = model_state(model)
    dtype = model.transformer.wte.weight.dtype
    zero_biases = {k: torch.zeros(s, dtype=dtype) for k, s in hf_shapes(model.config).items() if k not in state}
    return {**state, **zero_biases}  # biases are 1-D: their shapes are the same in both layouts


def to_hf_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights as GPT2LMHeadModel stores them, ready for safetensors."""
    return {k: v.contiguous() for k, v in swap_conv1d(full_state(model)).items()}


def from_hf_state(
    state: dict[str, torch.Tensor], config: GPTConfig, tied: bool, source: str
) -> dict[str, torch.Tensor]:
    """GPT-2 weights (from a GPT2LMHeadModel or a bare GPT2Model) as rapgpt's `GPT` loads them, in float32.

    Refuses missing, unexpected or misshapen tensors, and an output head that is not the token embedding.
    """
    state = {k: v for k, v in state.items() if not k.endswith(MASK_BUFFERS)}
    if not any(k.startswith(PREFIX) for k in state):  # saved from GPT2Model, as OpenAI's `gpt2` is
        state = {k if k == LM_HEAD else PREFIX + k: v for k, v in state.items()}
    head = state.pop(LM_HEAD, None)
    check_state(state, hf_shapes(config), source)
    if head is None and not tied:
        raise CheckpointError(f"{source} has no {LM_HEAD}, yet its config.json unties it from the token embedding")
    if head is not None and not torch.equal(head, state[PREFIX + "wte.weight"]):
        raise CheckpointError(
            f"{source} has an output head ({LM_HEAD}) that differs from its token embedding: rapgpt ties the two, "
            "as GPT-2 does, so it cannot import this model"
        )
    return {k: v.to(torch.float32).contiguous() for k, v in swap_conv1d(state).items()}


# PEFT LoRA adapters. PEFT keeps a layer's tensors under the layer's name inside `PeftModel`
# (`base_model.model.` + the GPT2LMHeadModel name, which is rapgpt's name), in `lora_A.weight`/`lora_B.weight` for
# Linear and Conv1D layers and in `lora_embedding_A`/`lora_embedding_B` for embeddings. The tensors themselves are
# laid out alike on both sides, Conv1D included: PEFT reads a Conv1D's in and out features from its (in, out)
# weight, keeps A as (r, in) and B as (out, r), and adds B A x to the output; it transposes only the merged
# update (fan_in_fan_out), which rapgpt never exchanges.
PEFT_PREFIX = "base_model.model."
PEFT_KEY = re.compile(r"base_model\.model\.(?P<layer>.+)\.(?:lora_(?P<ab>[AB])\.weight|lora_embedding_(?P<emb>[AB]))")


def to_peft_key(name: str, embedding: bool) -> str:
    """PEFT's key of a rapgpt LoRA tensor, e.g. `transformer.h.0.attn.c_attn.lora_A` (embedding: its `wte`)."""
    layer, _, leaf = name.rpartition(".")
    return f"{PEFT_PREFIX}{layer}.{'lora_embedding_' + leaf[-1] if embedding else leaf + '.weight'}"


def from_peft_key(key: str) -> tuple[str, bool] | None:
    """The rapgpt name of a PEFT LoRA tensor and whether it belongs to an embedding, or None for other keys."""
    m = PEFT_KEY.fullmatch(key)
    if m is None:
        return None
    return f"{m['layer']}.lora_{m['ab'] or m['emb']}", m["emb"] is not None


def shortest_targets(layers: list[str], modules: list[str]) -> list[str]:
    """The shortest name suffixes that together select exactly `layers` among `modules`, as both rapgpt's and
    PEFT's target patterns select (a name or a dotted suffix of it): `c_proj` for every attention and MLP
    projection of that name, `attn.c_proj` when only the attention's is adapted."""
    targets: list[str] = []
    for layer in layers:
        parts = layer.split(".")
        for start in range(len(parts) - 1, -1, -1):
            suffix = ".".join(parts[start:])
            if parts[start].isdigit():  # `h.1.mlp.c_fc` reads better than `1.mlp.c_fc`, which selects the same
                continue
            if all(m in layers for m in modules if m == suffix or m.endswith("." + suffix)):
                break
        if suffix not in targets:
            targets.append(suffix)
    return targets


def adaptable_modules(config: GPTConfig) -> list[str]:
    """The names of every Linear and Embedding layer of a model of this size, the output head included."""
    with torch.device("meta"):
        model = GPT(config)
    return [name for name, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
