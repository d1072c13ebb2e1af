"""The fused decoding step: each transformer block decodes its token in one native call (kernels/decode_block.cpp).

Decoding one token per row runs a dozen small operations per block around its four matrix-vector products; op by
op, their dispatch and Python cost more than their arithmetic (about 2 ms per token for GPT-2 124M). A
`FusedBlock` hands the whole step to one C++ call that computes the same, rounded at the same places.

It stands in for a `Block` of a CPU inference model whose Linear layers are all rapgpt's native-kernel layers
(`DenseLinear`, `Q8Linear`), and takes the decoding step alone: one new token per row with a KV cache, no autograd,
and no more rows than its Linear layers give to the kernel (a larger batch multiplies faster through PyTorch).
Prefill, training and every other call go through the block's own forward, unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from rapgpt.generate import kernels
from rapgpt.generate.linear import DenseLinear, Q8Linear
from rapgpt.model import GPT, Block, KVCache


class FusedBlock(Block):
    """`block` (its very modules and weights, so its state dict is the same) with a one-call decoding step. The
    weights are gathered once, here: after `prepare_for_inference` they do not change."""

    def __init__(self, block: Block):
        nn.Module.__init__(self)  # not Block.__init__: the block's own modules are kept, none are made
        self.ln_1, self.attn, self.ln_2, self.mlp = block.ln_1, block.attn, block.ln_2, block.mlp
        self.train(block.training)
        self.isa = kernels.q8_isa()
        # More rows than its Linear layers give to the kernel (a large batch) decode faster op by op.
        self.max_rows = self.attn.c_attn.max_kernel_rows
        # In the order that decode_block.cpp reads them.
        self.weights = [self.ln_1.weight, self.ln_1.bias, *_linear(self.attn.c_attn), *_linear(self.attn.c_proj),
                        self.ln_2.weight, self.ln_2.bias, *_linear(self.mlp.c_fc), *_linear(self.mlp.c_proj)]

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, input_pos=None, mask=None) -> torch.Tensor:
        if (cache is None or x.size(1) != 1 or x.size(0) > self.max_rows or self.training
                or torch.is_grad_enabled()):
            return super().forward(x, cache, input_pos, mask)
        return torch.ops.rapgpt.decode_block(x, self.weights, cache.k, cache.v, input_pos, self.attn.n_head,
                                             self.ln_1.eps, self.isa)


def _linear(layer: DenseLinear | Q8Linear) -> list[torch.Tensor | None]:
    """A Linear layer for decode_block.cpp: its weight, its scale (int8 weights only), its bias."""
    return [layer.weight, getattr(layer, "scale", None), layer.bias]


def can_fuse(block: Block, dtype: torch.dtype) -> bool:
    """Whether the fused step takes `block` in `dtype`: native-kernel Linear layers on the CPU, where it runs."""
    linears = (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj)
    return (dtype in (torch.float32, torch.bfloat16) and block.ln_1.weight.device.type == "cpu"
            and all(isinstance(m, (DenseLinear, Q8Linear)) for m in linears) and kernels.fused_available())


def fuse_blocks(model: GPT, dtype: torch.dtype) -> None:
    """Swap in a `FusedBlock` for each block of `model` that the fused step takes (all or none: one kind of layer
    is in every block)."""
    blocks = model.transformer.h
    if all(can_fuse(block, dtype) for block in blocks):
        for i, block in enumerate(blocks):
            blocks[i] = FusedBlock(block)
