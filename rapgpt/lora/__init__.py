"""LoRA: adapt a pretrained GPT to one artist by training a small low-rank update beside each frozen weight.

A targeted layer with frozen weight W (out x in) computes W x + scaling * B A x (Hu et al. 2021), where only
A (r x in) and B (out x r) are trained and scaling = alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski
2023, the default), which keeps the update's magnitude stable as the rank grows. One of A and B starts at zero, so
the adapted model starts exactly equal to the base. Tensor names and layouts follow PEFT, so adapters map onto
`peft` one to one:
    Linear      lora_A (r, in) kaiming-uniform, lora_B (out, r) zero;       dropout on the LoRA path's input.
    Embedding   lora_A (r, vocab) zero,         lora_B (dim, r) normal(0, 1); the update of the embedding matrix
                is (B A)^T, and there is no dropout (the input is token ids).
The output head is tied to the token embedding. When `transformer.wte` is adapted (by default), the head computes
its logits against the adapted matrix (wte + update) as well, so input and output stay tied, which is exactly what
merging the update into the shared weight produces: unmerged and merged models give the same logits. Its update
moves every logit, so it trains at a learning rate of its own (`--embedding-lr`).

The package: `layers` (the LoRA layers), `surgery` (wrapping, unwrapping and merging a model's layers) and
`adapter` (adapter files, and runs adapted or merged from them). An adapter directory holds adapter.safetensors
(the LoRA tensors) and adapter_config.json (the `LoRAConfig`, the adapted layers, and a fingerprint of the base
weights that refuses loading onto any other base).
"""

from rapgpt.lora.adapter import (
    ADAPTER_CONFIG,
    ADAPTER_FORMAT,
    ADAPTER_WEIGHTS,
    base_fingerprint,
    base_state,
    load_adapted_run,
    load_adapter,
    merge_run,
    read_adapter_config,
    recorded_base_run,
    save_adapter,
)
from rapgpt.lora.layers import LoRAEmbedding, LoRALayer, LoRALinear, TiedLoRAHead
from rapgpt.lora.surgery import (
    ParameterCount,
    apply_lora,
    load_lora_state,
    lora_layers,
    lora_state,
    merge_lora,
    select_targets,
    trainable_parameters_report,
)
from rapgpt.training.config import BLOCK_PROJECTIONS, DEFAULT_LORA_TARGETS, LoRAConfig, lora_scaling

# The attention and MLP projections of every block, and the token embedding (with the tied head).
DEFAULT_TARGETS = DEFAULT_LORA_TARGETS

__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_FORMAT", "ADAPTER_WEIGHTS", "BLOCK_PROJECTIONS", "DEFAULT_TARGETS", "LoRAConfig",
    "LoRAEmbedding", "LoRALayer", "LoRALinear", "ParameterCount", "TiedLoRAHead", "apply_lora", "base_fingerprint",
    "base_state", "load_adapted_run", "load_adapter", "load_lora_state", "lora_layers", "lora_scaling", "lora_state",
    "merge_lora", "merge_run", "read_adapter_config", "recorded_base_run", "save_adapter", "select_targets",
    "trainable_parameters_report",
]
