"""Where and how training runs: the device, the precision, and the process group under `torchrun`.

`torchrun --nproc_per_node=N -m rapgpt train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; each process then trains
a replica (gloo on CPUs, NCCL on GPUs) and only rank 0 prints and writes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from rapgpt.errors import ConfigError
from rapgpt.precision import AUTO, Precision


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32, bf16 or fp16, resolved from "auto"
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward pass and the loss; fp32 runs without autocast."""
        precision = Precision(self.precision)
        if not precision.autocasts:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=precision.dtype)

    def all_reduce(self, tensor: torch.Tensor, op: Any = None) -> torch.Tensor:
        """Sum (or `op`) of `tensor` over all processes, in place; the tensor itself when alone."""
        if self.distributed:
            dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
        return tensor


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU: use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps was asked for but this PyTorch has no MPS support: use --device cpu")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether the hardware computes in bfloat16 natively (recent GPUs; CPUs with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def pick_precision(name: str, device: torch.device) -> str:
    if name == AUTO:
        return "bf16" if bf16_is_fast(device) else "fp32"
    if Precision.parse(name).scales_loss and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA GPU (it trains with loss scaling); on {device.type} use bf16")
    return name


def setup_runtime(device: str = "auto", precision: str = "auto", threads: int | None = None) -> Runtime:
    """Resolve the device and precision and, under `torchrun`, join the process group."""
    if threads is not None:
        torch.set_num_threads(threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    resolved = pick_device(device)
    if world_size > 1:
        if resolved.type == "cuda":
            resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Runtime(resolved, pick_precision(precision, resolved), rank, world_size)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()
