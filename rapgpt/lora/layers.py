"""The LoRA layers: a frozen base layer plus a trained low-rank update, and merging the update into the base.

See `rapgpt.lora` for the maths and the layouts (those of PEFT).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rapgpt.training.config import lora_scaling


class LoRALayer(nn.Module):
    """What LoRALinear and LoRAEmbedding share: a frozen `base` layer and the merging of their update into it."""

    def __init__(self, base: nn.Linear | nn.Embedding, rank: int, alpha: float, rslora: bool):
        super().__init__()
        self.base = base
        self.scaling = lora_scaling(alpha, rank, rslora)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update of the base weight, in the base weight's shape."""
        raise NotImplementedError

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight in place; forward then costs what the base layer costs."""
        if not self.merged:
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the base weight again (exact up to float rounding)."""
        if self.merged:
            self.base.weight.sub_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = False


class LoRALinear(LoRALayer):
    """A frozen nn.Linear plus the trained update: base(x) + scaling * B A dropout(x)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rslora: bool = True, dropout: float = 0.0):
        super().__init__(base, rank, alpha, rslora)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its own weight
        self.dropout = nn.Dropout(dropout)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        device = x.device.type
        if torch.is_autocast_enabled(device):  # cast once for both paths (autocast would cast x for each matmul)
            x = x.to(torch.get_autocast_dtype(device))
        y = self.base(x)
        # The scaling goes on the rank-r intermediate (r multiplies per token instead of `out`); `@ lora_B.T` makes
        # B's gradient the fast (r, T) @ (T, out) product; the sum is made in place, as the base matmul's backward
        # does not need its output.
        return y.add_((F.linear(self.dropout(x), self.lora_A) * self.scaling) @ self.lora_B.T)


class LoRAEmbedding(LoRALayer):
    """A frozen nn.Embedding plus the trained update (B A)^T * scaling of its (vocab, dim) matrix.

    Also serves as the tied output head through `logits`, which uses the same adapted matrix.
    """

    def __init__(self, base: nn.Embedding, rank: int, alpha: float, rslora: bool = True):
        super().__init__(base, rank, alpha, rslora)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.zeros(rank, base.num_embeddings, **like))
        self.lora_B = nn.Parameter(torch.empty(base.embedding_dim, rank, **like))
        nn.init.normal_(self.lora_B)  # the roles of A and B swapped with respect to Linear, as PEFT and loralib do

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A).T * self.scaling  # (vocab, dim)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        y = self.base(idx)
        if self.merged:
            return y
        return y.add_((F.embedding(idx, self.lora_A.T) * self.scaling) @ self.lora_B.T)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) against the adapted matrix: x W^T + scaling * (x B) A, without forming W + update."""
        y = F.linear(x, self.base.weight)
        if self.merged:
            return y
        return y.add_((x @ self.lora_B * self.scaling) @ self.lora_A)


class TiedLoRAHead(nn.Module):
    """The output head tied to an adapted token embedding: logits against wte + its update, as merging gives."""

    def __init__(self, embedding: LoRAEmbedding):
        super().__init__()
        self.__dict__["embedding"] = embedding  # not a submodule: its tensors are counted and saved once, in wte

    @property
    def weight(self) -> torch.Tensor:
        """The matrix the logits are taken against: wte's plus its update until merged. The training loss reads
        it (GPT.forward with targets), so the update is trained on the output side as on the input side."""
        embedding = self.embedding
        return embedding.base.weight if embedding.merged else embedding.base.weight + embedding.delta_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding.logits(x)
