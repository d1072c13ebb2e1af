"""Numeric precision: one set of names, and what each one does in training and in inference.

- Training keeps its weights and optimizer state in fp32 and runs the forward pass and the loss under autocast in
  the named dtype (fp16 adds loss scaling and needs CUDA); "auto" picks bf16 where the hardware computes it natively.
- Inference casts the weights themselves (and so the activations and the KV cache) to the named dtype.

Importing this module does not import torch, so the command line can list the names without loading it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from rapgpt.errors import ConfigError

if TYPE_CHECKING:
    import torch

AUTO = "auto"  # training only: bf16 where the hardware has it, else fp32


class Precision(enum.Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @classmethod
    def parse(cls, name: str | Precision) -> Precision:
        """The precision called `name`, or a ConfigError listing the valid names."""
        try:
            return cls(name)
        except ValueError:
            raise ConfigError(f"unknown precision {name!r}: choose one of {', '.join(INFERENCE_CHOICES)}") from None

    @property
    def dtype(self) -> torch.dtype:
        """Training: the dtype autocast computes in. Inference: the dtype the weights are cast to."""
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.value]

    @property
    def autocasts(self) -> bool:
        """Whether training runs under autocast (fp32 runs without it)."""
        return self is not Precision.FP32

    @property
    def scales_loss(self) -> bool:
        """Whether training scales the loss against fp16's narrow range."""
        return self is Precision.FP16


INFERENCE_CHOICES = tuple(p.value for p in Precision)
TRAINING_CHOICES = (AUTO, *INFERENCE_CHOICES)
