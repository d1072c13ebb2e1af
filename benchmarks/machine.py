"""What a benchmark ran on: the CPU, its cores and how busy the machine was, printed beside every timing table."""

from __future__ import annotations

import os
import subprocess


def cpu_model() -> str:
    """`lscpu`'s model name, with the instruction sets that decide bf16 speed (AVX512-BF16, AMX)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    flags = set(fields.get("Flags", "").split())
    extras = [label for flag, label in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")) if flag in flags]
    return f"{name} ({', '.join(extras) or 'no bf16 instructions'})"


def machine_line() -> str:
    """One line: CPU, cores and the 1-minute load average (other work on the machine slows every contender)."""
    load = os.getloadavg()[0]
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {load:.2f}"
