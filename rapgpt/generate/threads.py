"""The default CPU thread count for decoding, shared by `rapgpt generate`, `rapgpt serve` and the evaluation's samples.

Decoding one token reads every weight once and does little arithmetic on it, so it is bound by memory bandwidth,
and every Linear layer is a parallel region whose threads wait for each other at its end. A second hardware thread
of the same core (SMT) adds no bandwidth, only one more thread to wait for; and past a handful of cores the memory
bus is full while each of a model's ~100 regions per token still pays for every thread. Hence: one thread per
physical core the process may run on, at most DECODE_MAX_THREADS. `benchmarks/generate_speed.py --threads 1 2 4 8`
measures the rule on a machine. An OMP_NUM_THREADS in the environment wins over the rule.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

DECODE_MAX_THREADS = 8
CPU_TOPOLOGY = Path("/sys/devices/system/cpu")


def physical_cores() -> int:
    """Distinct physical cores among the CPUs this process may run on (SMT siblings count once). Where the
    topology cannot be read, every CPU counts as a core."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = CPU_TOPOLOGY / f"cpu{cpu}" / "topology"
        try:
            cores.add(tuple((topology / name).read_text().strip() for name in ("physical_package_id", "core_id")))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def decode_threads() -> int:
    """The thread count for batch-1 decoding when none is given: OMP_NUM_THREADS if set, else the physical cores,
    at most DECODE_MAX_THREADS."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # torch has read it at start-up
    return min(physical_cores(), DECODE_MAX_THREADS)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
