"""Linear layers for CPU inference: a oneDNN-prepacked Linear, and weight-only int8 with per-channel scales.

Decoding multiplies one row of activations by every weight matrix, so its speed is the speed at which weights
are read from memory. On CPU, `F.linear` with one bf16 row takes a slow matrix-vector path; a weight reordered
once into oneDNN's blocked layout is read at memory speed. Weight-only int8 halves the bytes again, while the
activations, the residual stream and the KV cache keep the model's precision: the quantization error then stays
in the weights, where one scale per output channel bounds it to half a step of that channel's own range.

PyTorch's dynamic quantization has a faster int8 kernel, but it rounds each layer's input to int8 with one scale
for the whole batch: it cost more perplexity, and it would make a sequence's output depend on its batch-mates.

In bf16, rapgpt's native kernel (`DenseLinear`, where it builds and the CPU has AVX512-BF16) decodes faster still
than oneDNN: it asks for the weights ahead of their use, and reads them about 1.4x faster. Its fp32 twin (AVX512F)
serves fp32 the same way.

Where rapgpt's native kernel builds (rapgpt.generate.kernels), int8 takes llama.cpp's q8_0 layout instead: blocks
of 32 weights with a float16 scale each, a finer grid than one scale per channel. Each decoded row is rounded to
int8 blocks too, so that the dot products run in int8 (VNNI) and the weights stream at memory speed; prefill, many
rows at once, multiplies the dequantized weights. Without the kernel, int8 stays per channel as above.

The fast paths are private PyTorch ops, which a PyTorch build may lack or a release may drop. Each is looked up
once (`private_op`); a missing one is logged in one line and replaced by plain PyTorch that computes the same:
unpacked `nn.Linear` layers, and an int8 matmul through float32.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

# The int8 matmul kernel reads the inner dimension in blocks of 16 (other sizes are not supported).
INT8_BLOCK = 16
# Weights are packed as for this many rows of activations. Packed for a single row, oneDNN picks a matrix-vector
# kernel that streams fp32 weights about 1.5x slower than its blocked GEMM does, even when decoding one row.
PACK_ROWS = 8


# The private ops, by their path under torch.ops ("mkldnn.") or torch.
REORDER, LINEAR_POINTWISE, BF16_SUPPORTED = ("mkldnn._reorder_linear_weight", "mkldnn._linear_pointwise",
                                             "mkldnn._is_mkldnn_bf16_supported")
INT8_MM = "_weight_int8pack_mm"


@functools.cache
def private_op(name: str) -> Callable[..., torch.Tensor] | None:
    """The private PyTorch op `name` (see above), or None when this PyTorch lacks it, said once in the log."""
    try:
        return operator.attrgetter(name)(torch.ops if name.startswith("mkldnn.") else torch)
    except (AttributeError, RuntimeError):
        log.info("notice: this PyTorch (%s) has no %s: using plain PyTorch instead (slower)", torch.__version__, name)
        return None


def can_pack(dtype: torch.dtype) -> bool:
    """Whether oneDNN has a prepacked path for `dtype` on this CPU."""
    if not torch.backends.mkldnn.is_available() or not all(map(private_op, (REORDER, LINEAR_POINTWISE))):
        return False
    if dtype == torch.bfloat16:
        supported = private_op(BF16_SUPPORTED)
        return supported is not None and supported()
    return dtype == torch.float32


class PackedLinear(nn.Module):
    """`nn.Linear` with its weight prepacked for oneDNN (the packed layout serves inference only). A tied output
    head becomes a packed copy beside the embedding it shares weights with: memory spent for speed."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", private_op(REORDER)(linear.weight.detach(), PACK_ROWS))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.op = private_op(LINEAR_POINTWISE)  # present: `can_pack` is asked before packing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, self.weight, self.bias, "none", [], "")


def quantize_per_channel(
    weight: torch.Tensor, dtype: torch.dtype = torch.bfloat16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 weights and one scale per output row: weight ~= q * scale, |q| <= 127.

    The scale is rounded to `dtype` (what the kernel multiplies by) before the weights are rounded against it."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).to(dtype)
    q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """Weight-only int8 Linear: int8 weights times bf16 inputs, accumulated in float32, scaled per output channel."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, dtype: torch.dtype) -> Int8Linear:
        """Quantize `linear`'s weights; its bias goes to `dtype`, the precision of the model's activations."""
        q, scale = quantize_per_channel(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach().to(dtype, copy=True)
        return cls(q, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(self.scale.dtype).contiguous()
        matmul = private_op(INT8_MM) or int8_matmul
        y = matmul(rows, self.weight, self.scale).view(*x.shape[:-1], self.out_features)
        y = y.to(x.dtype)
        return y if self.bias is None else y + self.bias


def int8_matmul(rows: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """What `torch._weight_int8pack_mm` computes, in plain PyTorch: rows times int8 weights, accumulated in float32,
    scaled per output channel, rounded to the rows' dtype."""
    return (F.linear(rows.float(), weight.float()) * scale.float()).to(rows.dtype)


# q8_0: weights in blocks of this many along the input, one float16 scale each (the native kernel's layout).
Q8_BLOCK = 32
# Above this many rows (prefill), the native kernels give way to a matrix multiplication in the model's dtype (of
# the dequantized weights, for int8), which is faster there.
KERNEL_MAX_ROWS = 32
# The bf16 and fp32 kernel reads the weights once per row: from 8 rows up (a batch of sequences, or of candidate
# lines), a matrix multiplication through PyTorch is as fast, and at 32 rows twice as fast (measured at 1 thread).
DENSE_MAX_ROWS = 8


def quantize_blocks(weight: torch.Tensor, block: int = Q8_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 weights [out, in] and one float16 scale per block of `block` inputs [out, in / block]:
    weight ~= q * scale, |q| <= 127. The scale is rounded to float16 before the weights are rounded against it."""
    out_features, in_features = weight.shape
    w = weight.detach().float().view(out_features, in_features // block, block)
    scale = (w.abs().amax(dim=-1) / 127).clamp(min=2**-24).half()  # all-zero blocks: the smallest float16 step
    q = torch.round(w / scale.float()[..., None]).clamp(-127, 127).to(torch.int8)
    return q.view(out_features, in_features), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int8 rows times their scales, one per row ([out]) or one per block of each row ([out, blocks])."""
    blocks = scale.view(q.shape[0], -1)
    return (q.view(*blocks.shape, -1).to(dtype) * blocks[..., None].to(dtype)).view(q.shape)


class Q8Linear(nn.Module):
    """Int8 Linear in q8_0 blocks, run by the native kernel (`isa`: its instruction set) for decoding."""

    max_kernel_rows = KERNEL_MAX_ROWS  # more rows go through the dequantized weights

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, isa: int):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)
        self.isa = isa

    @classmethod
    def from_linear(cls, linear: nn.Linear, dtype: torch.dtype, isa: int) -> Q8Linear:
        """Quantize `linear`'s weights; its bias goes to `dtype`, the precision of the model's activations."""
        q, scale = quantize_blocks(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach().to(dtype, copy=True)
        return cls(q, scale, bias, isa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > self.max_kernel_rows:
            y = F.linear(rows, dequantize(self.weight, self.scale, x.dtype), self.bias)
        else:
            y = torch.ops.rapgpt.q8_linear(rows.contiguous(), self.weight, self.scale, self.bias, self.isa)
        return y.view(*x.shape[:-1], self.out_features)


class DenseLinear(nn.Module):
    """`nn.Linear` in bf16 or fp32 whose decoding rows go through the native kernel, prefill through `F.linear`. A
    tied output head keeps sharing its matrix with the embedding."""

    max_kernel_rows = DENSE_MAX_ROWS  # more rows go through F.linear

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] > self.max_kernel_rows:
            return F.linear(x, self.weight, self.bias)
        y = torch.ops.rapgpt.dense_linear(rows.contiguous(), self.weight, self.bias)
        return y.view(*x.shape[:-1], self.out_features)


class Int8Embedding(nn.Module):
    """An embedding that reads its rows from a tied int8 output head (the same int8 rows and scales)."""

    def __init__(self, head: Int8Linear | Q8Linear, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("weight", head.weight)
        self.register_buffer("scale", head.scale.view(head.out_features, -1))  # per row, or per block of a row
        self.dtype = dtype

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(idx, self.weight)
        return dequantize(rows.view(-1, rows.shape[-1]), F.embedding(idx, self.scale), self.dtype).view(rows.shape)
