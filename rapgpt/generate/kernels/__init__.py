"""rapgpt's native CPU decode kernels (decode_linear.cpp: int8, bf16 and fp32 Linear layers; decode_block.cpp: a
transformer block's whole decoding step around them; sample.cpp: the sampling filters and draw), compiled on first
use for the CPU at hand and cached.

The build runs once per machine: `torch.utils.cpp_extension` compiles the sources with -O3 -march=native into the
torch extensions cache, in a directory named after the CPU, the PyTorch version and the sources, and later runs load
the library from there. Without a compiler, when the build fails, on a CPU without AVX2, or with RAPGPT_KERNELS=0 in
the environment, `q8_isa()` is 0 (and `dense_available()`, `fused_available()`, `sampler_available()` False) and
callers keep their PyTorch path; the reason is said once in the log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import sysconfig
from pathlib import Path

import torch

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SOURCES = (HERE / "decode_linear.cpp", HERE / "decode_block.cpp", HERE / "sample.cpp")
HEADERS = (HERE / "decode_linear.h",)
SWITCH = "RAPGPT_KERNELS"  # "0" (or off/false/no): never build nor use the native kernels
CFLAGS = ["-O3", "-march=native", "-fopenmp"]  # OpenMP: torch's own thread pool, through at::parallel_for
ISA_NAMES = {1: "AVX2", 2: "AVX512-VNNI"}
DENSE_BLOCK = 32  # the bf16 and fp32 kernels take inner dimensions that are a multiple of this


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def build_directory() -> Path:
    """Where this machine's build lives: named after the CPU model and flags, PyTorch, the compiler flags and the
    source, so that a home directory shared between machines never loads a build made for another CPU, and two
    versions of rapgpt on one machine do not rebuild over each other."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        cpu += "".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
    source = hashlib.sha256(b"".join(path.read_bytes() for path in (*SOURCES, *HEADERS))).hexdigest()
    key = hashlib.sha256(f"{cpu}|{torch.__version__}|{' '.join(CFLAGS)}|{source}".encode()).hexdigest()[:12]
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"rapgpt_kernels_{key}"


def _build() -> None:
    """Compile (or load the cached build of) the kernels; their ops then live under torch.ops.rapgpt."""
    from torch.utils import cpp_extension

    where = build_directory()
    where.mkdir(parents=True, exist_ok=True)
    if not (where / "rapgpt_kernels.so").exists():
        log.info("building rapgpt's decode kernels for this CPU (once per machine, into %s)", where)
    path = os.environ.get("PATH", "")
    if shutil.which("ninja") is None:  # the `ninja` package installs it beside this Python's scripts
        os.environ["PATH"] = f"{sysconfig.get_path('scripts')}{os.pathsep}{path}"
    try:
        cpp_extension.load("rapgpt_kernels", [str(path) for path in SOURCES], extra_cflags=CFLAGS,
                           extra_ldflags=["-fopenmp"], build_directory=str(where), is_python_module=False)
    finally:
        os.environ["PATH"] = path


@functools.cache
def q8_isa() -> int:
    """The best instruction set of the int8 kernel on this CPU (1 AVX2, 2 AVX512-VNNI), or 0 without the kernel."""
    if not enabled():
        log.info("notice: %s=0: rapgpt's native int8 kernel is off, int8 layers use plain PyTorch", SWITCH)
        return 0
    try:
        _build()
    except Exception as error:  # noqa: BLE001 - any build failure (no compiler, no ninja, a compile error) falls back
        first = str(error).strip().splitlines()[:1]
        log.info("notice: rapgpt's int8 kernel could not be built (%s): int8 layers use plain PyTorch (slower)",
                 first[0] if first else type(error).__name__)
        return 0
    isa = int(torch.ops.rapgpt.q8_best_isa())
    if isa == 0:
        log.info("notice: this CPU has no AVX2: rapgpt's int8 kernel is off, int8 layers use plain PyTorch")
    else:
        log.debug("rapgpt's int8 kernel: %s", ISA_NAMES[isa])
    return isa


def dense_available(dtype: torch.dtype) -> bool:
    """Whether the native kernel for `dtype` weights (bf16: AVX512-BF16; fp32: AVX512F) runs here."""
    return dtype in (torch.float32, torch.bfloat16) and q8_isa() > 0 and bool(torch.ops.rapgpt.dense_supported(dtype))


def fused_available() -> bool:
    """Whether the fused decoding step of a transformer block (AVX-512) runs here."""
    return q8_isa() > 0 and bool(torch.ops.rapgpt.decode_block_supported())


def sampler_available() -> bool:
    """Whether the native sampler runs here: wherever the other kernels do (it is built with them)."""
    return q8_isa() > 0
