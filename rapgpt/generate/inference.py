"""Loading a trained run for CPU inference: precision (fp32, bf16, fp16), weight-only int8, and memory figures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rapgpt.checkpoint import WEIGHTS, load_run
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import ConfigError
from rapgpt.generate import kernels
from rapgpt.generate.fused import fuse_blocks
from rapgpt.generate.linear import (
    INT8_BLOCK,
    Q8_BLOCK,
    DenseLinear,
    Int8Embedding,
    Int8Linear,
    PackedLinear,
    Q8Linear,
    can_pack,
)
from rapgpt.generate.params import InferenceConfig, check_quantize
from rapgpt.model import GPT, GPTConfig
from rapgpt.precision import Precision
from rapgpt.training.runtime import pick_device

log = logging.getLogger(__name__)



def load_for_inference(
    run_dir: str | Path,
    precision: str = InferenceConfig.precision,
    quantize: str | None = InferenceConfig.quantize,
    weights: str = WEIGHTS,
    adapter: str | Path | None = None,
    device: str = InferenceConfig.device,
) -> tuple[GPT, Tokenizer]:
    """A run's model ready to generate on `device` (eval mode; on the CPU, inference-only layers), and its
    tokenizer; with `adapter`, a LoRA adapter trained on the run is merged into the weights first."""
    dtype = Precision.parse(precision).dtype  # inference casts the weights themselves
    check_quantize(quantize)
    where = pick_device(device)
    if quantize is not None and where.type != "cpu":
        raise ConfigError(f"--quantize {quantize} runs on the CPU only: drop it, or use --device cpu")
    if adapter is None:
        model, tokenizer, _ = load_run(run_dir, where, weights=weights)
    else:
        from rapgpt.lora import load_adapted_run

        model, tokenizer, _ = load_adapted_run(run_dir, adapter, merge=True, device=where)
    # The weights are final from here on: packed and quantized layers cannot be trained or merged into.
    model = prepare_for_inference(model, dtype, quantize)
    log.info("%s", memory_report(model, precision, quantize))
    return model, tokenizer


def prepare_for_inference(model: GPT, dtype: torch.dtype, quantize: str | None = None) -> GPT:
    """Convert `model` in place to `dtype`, on the CPU with CPU-fast Linear layers; with quantize="int8" (CPU
    only), every Linear and the tied embedding/output matrix hold int8 weights: in q8_0 blocks for the native
    kernel where it runs, with per-channel scales otherwise. Where every block's Linear layers are native-kernel
    ones, the blocks decode through the fused step (rapgpt.generate.fused)."""
    model.eval()
    if quantize == "int8":  # quantized from the float32 weights, before the cast rounds them
        int8 = {n: int8_linear(m, dtype) for n, m in _linears(model)}
        model.to(dtype)
        _swap(model, lambda name, m: int8.get(name) or m)
        if isinstance(model.lm_head, (Int8Linear, Q8Linear)):  # the tied embedding reads the same int8 rows
            model.transformer.wte = Int8Embedding(model.lm_head, dtype)
    else:
        model.to(dtype)
        if model.lm_head.weight.device.type == "cpu":
            _swap(model, lambda name, m: float_linear(m, dtype))
    fuse_blocks(model, dtype)
    return model


def float_linear(linear: nn.Linear, dtype: torch.dtype) -> nn.Module:
    """The fastest CPU layer for `linear` in `dtype`: the native kernel (bf16, fp32), else oneDNN's packed weights,
    else `linear` itself."""
    if linear.in_features % kernels.DENSE_BLOCK == 0 and kernels.dense_available(dtype):
        return DenseLinear(linear)
    return PackedLinear(linear) if can_pack(dtype) else linear


def int8_linear(linear: nn.Linear, dtype: torch.dtype) -> Q8Linear | Int8Linear | None:
    """`linear` with int8 weights: q8_0 blocks run by the native kernel when it runs here and takes this shape and
    dtype, else per-channel int8 through PyTorch; None when neither takes its shape."""
    native = dtype in (torch.float32, torch.bfloat16) and linear.in_features % Q8_BLOCK == 0
    if native and kernels.q8_isa():
        return Q8Linear.from_linear(linear, dtype, kernels.q8_isa())
    return Int8Linear.from_linear(linear, dtype) if linear.in_features % INT8_BLOCK == 0 else None


def _linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _swap(model: nn.Module, make: Callable[[str, nn.Linear], nn.Module]) -> None:
    for name, linear in _linears(model):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, make(name, linear))


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the model's tensors in memory, each shared tensor counted once."""
    seen: dict[int, int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        if t.layout == torch._mkldnn:  # a prepacked weight: opaque memory, one element per weight
            seen[id(t)] = t.numel() * t.element_size()
        else:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def cache_nbytes(config: GPTConfig, batch: int, dtype: torch.dtype) -> int:
    """The KV cache's size: batch x layers x heads x context x head_dim x 2 (K and V) x bytes per element."""
    return batch * config.n_layer * config.n_head * config.block_size * config.head_dim * 2 * dtype.itemsize


def memory_report(model: GPT, precision: str, quantize: str | None) -> str:
    c = model.config
    params = c.n_layer * 12 * c.n_embd**2 + (c.vocab_size + c.block_size) * c.n_embd  # weights, biases aside
    kind = precision + (f", {quantize} weights" if quantize else "")
    return f"model: ~{params / 1e6:.1f}M parameters, {kind}, {format_bytes(model_nbytes(model))} in memory"


def format_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
