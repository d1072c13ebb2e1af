"""The GPT-2 architecture: a decoder-only transformer, small enough to read in one sitting.

Modules carry GPT-2's checkpoint names (`transformer.wte`, `transformer.h.N.attn.c_attn`, ...), so that weights
map onto Hugging Face's `GPT2LMHeadModel` with no translation table beyond transposing its Conv1D matrices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rapgpt.errors import ConfigError
from rapgpt.losses import linear_cross_entropy


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # the context length: positions the model has embeddings for
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as GPT-2 has them

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    # The character-level lyrics model (~10M parameters).
    "char-10m": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
    # A BPE model small enough to serve from a CPU.
    "rap-small": {"n_layer": 8, "n_head": 8, "n_embd": 512, "block_size": 1024, "dropout": 0.1},
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "block_size": 1024},
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280, "block_size": 1024},
}


def preset_config(name: str, vocab_size: int, **overrides: Any) -> GPTConfig:
    """The named preset for a tokenizer's vocabulary, with any field overridden."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], "vocab_size": vocab_size, **overrides})


class KVCache:
    """Keys and values of one layer for `batch` sequences, preallocated for the whole context.

    Each sequence writes at its own positions, so sequences of different lengths share one batch (right-padded
    prompts, or requests joining a running batch): a query attends to cached positions up to its own.
    """

    def __init__(self, batch: int, n_head: int, max_len: int, head_dim: int, dtype: torch.dtype, device: Any):
        shape = (batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def rows(self, start: int, stop: int) -> KVCache:
        """Sequences start..stop-1 as a cache of their own that shares this one's memory (slots of a batch)."""
        view = object.__new__(KVCache)
        view.k, view.v = self.k[start:stop], self.v[start:stop]
        return view

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: int):
        """Store k, v (B, H, T, D) at positions `input_pos` (B, T); return the first `length` cached positions."""
        k, v = k.to(self.k.dtype), v.to(self.v.dtype)
        if k.size(0) == 1:  # one sequence, whose positions are consecutive: a slice copy
            start = int(input_pos[0, 0])
            self.k[:, :, start : start + k.size(2)] = k
            self.v[:, :, start : start + k.size(2)] = v
        else:  # an index copy (scatter_ would be far slower for bf16 on CPU)
            rows = torch.arange(k.size(0), device=k.device)[:, None]
            self.k[rows, :, input_pos] = k.transpose(1, 2)
            self.v[rows, :, input_pos] = v.transpose(1, 2)
        return self.k[:, :, :length], self.v[:, :, :length]

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


# PyTorch's fused attention kernel for CPUs computes bf16 inputs in fp32 blocks; up to this context length the
# explicit form, whose matmuls run in bf16, trains 2.5-3x faster (see benchmarks/train_throughput.py). Computing
# it in two halves of the queries skips the masked quarter of the scores.
EXPLICIT_ATTENTION_MAX_LEN = 512


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float) -> torch.Tensor:
    """Causal self-attention of q, k, v (B, H, T, D) for a whole sequence."""
    B, H, T, D = q.shape
    if q.device.type != "cpu" or q.dtype not in (torch.bfloat16, torch.float16) or T > EXPLICIT_ATTENTION_MAX_LEN:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    future = torch.full((T, T), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    q, k, v = (t.reshape(B * H, T, D) for t in (q, k, v))
    halves = []
    for rows in (slice(0, T // 2), slice(T // 2, T)):  # the first half of the queries sees only the first keys
        keys = slice(0, rows.stop)
        scores = torch.baddbmm(future[rows, keys], q[:, rows], k[:, keys].transpose(1, 2), alpha=D**-0.5)
        att = torch.softmax(scores, dim=-1)
        if dropout:
            att = F.dropout(att, dropout)
        halves.append((att @ v[:, keys]).view(B, H, rows.stop - rows.start, D).transpose(1, 2))
    return torch.cat(halves, dim=1).transpose(1, 2)  # laid out as (B, T, H, D), which the output projection reads


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, input_pos=None, mask=None) -> torch.Tensor:
        B, T, C = x.shape
        if cache is not None and T == 1:
            return self.resid_dropout(self.c_proj(self._decode(self.c_attn(x), cache, input_pos, mask)))
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            y = causal_attention(q, k, v, self.dropout if self.training else 0.0)
        else:
            k, v = cache.update(input_pos, k, v, mask.size(-1))
            y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _decode(self, qkv: torch.Tensor, cache: KVCache, input_pos: torch.Tensor, mask: torch.Tensor):
        """Attention for one new token per row, the step that decoding repeats. With T = 1, (B, 1, 3C) already
        reads as (B, 3, H, 1, D) and the output as (B, 1, C): no transposes or copies. On CPU the fused bf16
        kernels are several times slower for a single query than float32 attention over an upcast copy of the
        cache, which also keeps the scores precise."""
        B = qkv.size(0)
        q, k, v = qkv.view(B, 3, self.n_head, 1, -1).unbind(1)
        k, v = cache.update(input_pos, k, v, mask.size(-1))
        y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
        return y.to(qkv.dtype).view(B, 1, self.n_embd)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Compiled, it is written with 0.5 (1 + tanh z) = sigmoid(2z): the same function, fused into one kernel whose
    sigmoid vectorizes better than tanh on CPUs (1.7x faster); run op by op, PyTorch's own kernel is faster."""
    if torch.compiler.is_compiling():
        return x * torch.sigmoid(math.sqrt(8 / math.pi) * (x + 0.044715 * x * x * x))
    return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(gelu_tanh(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, input_pos=None, mask=None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, input_pos, mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "wpe": nn.Embedding(config.block_size, config.n_embd),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                "ln_f": nn.LayerNorm(config.n_embd, bias=config.bias),
            }
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying, as GPT-2
        self.apply(self._init_weights)
        # Residual projections scaled by 1/sqrt(2 * n_layer): each block adds two of them to the residual stream.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Parameters counted once (the tied head shares the token embedding)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, dtype: torch.dtype | None = None, device: Any = None) -> list[KVCache]:
        c = self.config
        # ln_f keeps the compute dtype even when inference swaps the Linear layers for packed or quantized ones.
        dtype = dtype or self.transformer.ln_f.weight.dtype
        device = device or self.transformer.ln_f.weight.device
        return [KVCache(batch, c.n_head, c.block_size, c.head_dim, dtype, device) for _ in range(c.n_layer)]

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: list[KVCache] | None = None,
        input_pos: torch.Tensor | None = None,
        last_only: bool = False,
        return_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits for token ids `idx` (B, T), and the mean cross-entropy when `targets` are given (-1 = ignore).

        With a `cache`, `input_pos` (B, T) gives each token's position (consecutive within a row); the new keys
        and values are stored at those positions and each token attends to every cached position up to its own.
        `last_only` computes logits for the last position alone, which is all that sampling needs. Training passes
        `return_logits=False` with targets: the loss is then computed without keeping the logits (None).
        """
        B, T = idx.shape
        if input_pos is None:
            if T > self.config.block_size:  # noqa: SIM300 (T is a length, not a constant)
                raise ConfigError(f"sequence of {T} tokens exceeds the context length {self.config.block_size}")
            input_pos = torch.arange(T, device=idx.device).expand(B, T)
        mask = None
        if cache is not None:
            length = int(input_pos.max()) + 1
            key_pos = torch.arange(length, device=idx.device)
            mask = (key_pos[None, None, None, :] <= input_pos[:, None, :, None])  # (B, 1, T, length)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(input_pos))
        if torch.is_autocast_enabled(idx.device.type):
            # Mixed precision: the residual stream too is kept in the lower precision, which saves a cast before
            # and after every layer (LayerNorm still computes its statistics in fp32).
            x = x.to(torch.get_autocast_dtype(idx.device.type))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache[i] if cache is not None else None, input_pos, mask)
        x = self.transformer.ln_f(x)
        if last_only:
            x = x[:, -1:, :]
        if targets is not None and not return_logits:
            return None, linear_cross_entropy(x.flatten(0, 1), self.lm_head.weight, targets.flatten())
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-1)
        return logits, loss
