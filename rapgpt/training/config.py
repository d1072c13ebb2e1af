"""The training loop's settings. The defaults are the recommended ones for a small model on a CPU budget."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from rapgpt.errors import ConfigError
from rapgpt.options import setting
from rapgpt.precision import TRAINING_CHOICES

OPTIMIZERS = ("adamw", "muon")
BUDGETS = ("max_steps", "max_tokens", "max_epochs", "max_minutes")
# The attention and MLP projections of every block (see `rapgpt.lora.select_targets` for the patterns).
BLOCK_PROJECTIONS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
# The layers LoRA adapts unless told otherwise: the projections and the token embedding, which carries an artist's
# choice of words on both sides of the model (it is tied to the output head), trained at its own small learning
# rate (`FinetuneConfig.embedding_lr`).
DEFAULT_LORA_TARGETS = (*BLOCK_PROJECTIONS, "wte")


@dataclass(frozen=True)
class TrainConfig:
    # Batches: each optimizer step sees batch_size * grad_accum * processes windows of the context length.
    batch_size: int = setting(16, "sequences per micro-batch on each process")
    grad_accum: int = setting(1, "micro-batches accumulated into one optimizer step")
    # Optimizer and schedule.
    lr: float = setting(2e-3, "peak learning rate, reached after the warmup")
    min_lr_ratio: float = setting(0.1, "the cosine decay's floor, as a fraction of --lr")
    warmup_steps: int = setting(50, "steps of linear warmup from 0 to --lr")
    decay_steps: int | None = setting(
        None, "steps over which the cosine decays to its floor (default: the end of the budget)"
    )
    weight_decay: float = setting(0.1, "AdamW weight decay, applied to weight matrices only")
    embedding_lr: float | None = setting(
        None, "peak learning rate of the token embedding (tied to the output head), on the same schedule as --lr "
        "(default: --lr)"
    )
    optimizer: str = setting(
        "muon", "muon: Muon for the matrices inside the blocks, AdamW for the rest; or adamw for all",
        choices=OPTIMIZERS,
    )
    muon_lr: float = setting(0.02, "Muon's peak learning rate (--optimizer muon), on the same schedule as --lr")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.99, "AdamW beta2")
    grad_clip: float = setting(1.0, "clip the gradient norm to this value (0: no clipping)")
    # Budget: training stops at the first one reached; with none given it runs one epoch.
    max_steps: int | None = setting(None, "stop after this many optimizer steps")
    max_tokens: int | None = setting(None, "stop after this many training tokens")
    max_epochs: float | None = setting(None, "stop after this many passes over the training tokens")
    max_minutes: float | None = setting(None, "stop after this many minutes of wall clock")
    # Evaluation and checkpoints.
    eval_interval: int = setting(100, "evaluate, log and checkpoint every N steps")
    eval_batches: int = setting(10, "batches of each split in every evaluation (the same windows every time)")
    patience: int = setting(3, "warn of overfitting when val loss rose for N evaluations while train loss fell")
    early_stop: bool = setting(False, "stop the run when overfitting is detected")
    sample_every: int = setting(0, "print a generated sample at every Nth evaluation (0: never)")
    sample_tokens: int = setting(200, "length of each generated sample, in tokens")
    tensorboard: str | None = setting(
        None, "also write the metrics and samples as TensorBoard events into DIR (without DIR: RUN/tensorboard), "
        "to watch with `tensorboard --logdir` (default: off; needs the tensorboard extra)",
        optional_value="", metavar="DIR",
    )
    # Runtime.
    precision: str = setting(
        "auto", "fp32, bf16 (autocast), fp16 (CUDA, with loss scaling); auto picks bf16 where the hardware has it",
        choices=TRAINING_CHOICES,
    )
    compile: bool = setting(False, "compile the model's blocks with torch.compile (slow first step, faster after)")
    device: str = setting("auto", "cpu, cuda, cuda:N or mps; auto picks CUDA, then MPS, then the CPU")
    threads: int | None = setting(None, "CPU threads for PyTorch (default: PyTorch's choice)")
    seed: int = setting(1337, "seed for initialisation, batches and dropout")

    def __post_init__(self) -> None:
        positive = ("batch_size", "grad_accum", "eval_interval", "eval_batches", "patience", "sample_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "sample_every", "weight_decay", "grad_clip", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("decay_steps", "threads", "embedding_lr", *BUDGETS):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        for name in ("lr", "muon_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")


# Settings that may differ when a run is resumed: budgets, logging and how the hardware is used. Every other
# setting shapes the trajectory, so a resumed run must keep it.
RESUMABLE_CHANGES = frozenset(
    {*BUDGETS, "eval_interval", "patience", "early_stop", "sample_every", "sample_tokens", "tensorboard", "compile",
     "device", "threads"}
)


@dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    """Pretraining: the loop's settings plus the model to build (a preset, any of its sizes overridden)."""

    preset: str = setting("char-10m", "model preset: char-10m, rap-small, gpt2, gpt2-medium or gpt2-large")
    dropout: float = setting(
        0.0, "dropout in the model; 0 suits runs shorter than a few epochs, 0.1-0.2 long runs on small corpora"
    )
    block_size: int | None = setting(None, "context length in tokens (default: the preset's)")
    n_layer: int | None = setting(None, "transformer blocks (default: the preset's)")
    n_head: int | None = setting(None, "attention heads (default: the preset's)")
    n_embd: int | None = setting(None, "embedding width (default: the preset's)")

    def model_overrides(self) -> dict[str, int | float]:
        sizes = {k: getattr(self, k) for k in ("block_size", "n_layer", "n_head", "n_embd")}
        return {"dropout": self.dropout, **{k: v for k, v in sizes.items() if v is not None}}


def lora_scaling(alpha: float, rank: int, rslora: bool) -> float:
    """alpha / sqrt(r) with rsLoRA (rank-stabilised), alpha / r as in the original LoRA paper."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


@dataclass(frozen=True)
class LoRAConfig:
    """The LoRA adapter's settings: what `rapgpt finetune` takes and what an adapter file records."""

    rank: int = setting(8, "LoRA rank r")
    alpha: float = setting(8.0, "LoRA alpha: the update is scaled by alpha/sqrt(r) (rsLoRA) or alpha/r")
    rslora: bool = setting(True, "rank-stabilised scaling alpha/sqrt(r); --no-rslora for the original alpha/r")
    # Off by default, as in PEFT: on a CPU, drawing a mask for every adapted layer costs more than LoRA saves over
    # full training (benchmarks/lora_step.py), and the model's own dropout still regularises.
    dropout: float = setting(0.0, "dropout on the input of the LoRA path of Linear layers", name="lora_dropout")
    targets: tuple[str, ...] = setting(
        DEFAULT_LORA_TARGETS, "name patterns of the layers to adapt (leave out wte to keep the token embedding and "
        "the output head as the base has them)"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"LoRA rank must be a positive integer, got {self.rank!r}")
        if not self.alpha > 0:
            raise ConfigError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError(f"LoRA targets must be one or more non-empty name patterns, got {self.targets!r}")

    @property
    def scaling(self) -> float:
        return lora_scaling(self.alpha, self.rank, self.rslora)

    def to_dict(self) -> dict[str, Any]:
        """The adapter file's record (field names)."""
        return {**asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoRAConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown LoRA config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig, LoRAConfig):
    """Fine-tuning: the loop's settings and the adapter's (`LoRAConfig`), recorded flat in one run record. A short
    warmup and no weight decay suit the few parameters, initialised at zero, and the small single-artist datasets
    that LoRA is used with; the rest are the pretraining defaults."""

    lr: float = setting(5e-3, "peak learning rate, reached after the warmup")
    warmup_steps: int = setting(20, "steps of linear warmup from 0 to --lr")
    weight_decay: float = setting(0.0, "AdamW weight decay, applied to weight matrices only")
    # The embedding's adapter changes every logit through the tied head: at --lr it overshoots, at 1-5% of it the
    # artist's validation loss falls further than without it (measured in the README).
    embedding_lr: float | None = setting(
        1e-4, "peak learning rate of the token embedding's adapter (wte), on the same schedule as --lr"
    )
    optimizer: str = setting("adamw", "adamw: an adapter's low-rank matrices are not what Muon is for",
                             choices=("adamw",))
    eval_interval: int = setting(50, "evaluate, log and checkpoint every N steps")

    def __post_init__(self) -> None:
        TrainConfig.__post_init__(self)
        LoRAConfig.__post_init__(self)

    @property
    def lora(self) -> LoRAConfig:
        """The adapter's settings alone, as the adapter file records them."""
        return LoRAConfig(**{f.name: getattr(self, f.name) for f in fields(LoRAConfig)})
