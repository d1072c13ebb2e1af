"""Training throughput of rapgpt against Hugging Face's GPT2LMHeadModel, measured in the same run.

Both models get the same configuration, batch, precision, thread count and optimizer (fused AdamW, the default
of HF's Trainer, with gradient clipping at 1.0 as the Trainer does). rapgpt's step is the training loop's own
`train_step`; the peer's is the usual forward with labels, backward, clip and step. Steps of the two alternate,
so that a machine shared with other work slows both alike, and the median wall-clock step time gives tokens/s.
The CPU time per step (all threads) is printed beside it: on a busy machine it follows the work done even when
threads wait for a core.

    python benchmarks/train_throughput.py                              # every case: slow on a CPU
    python benchmarks/train_throughput.py --case char-10m --precision bf16 --threads 1,2 --compile
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

# OpenMP threads that spin while waiting for each other stall when the machine is shared (then 2 threads run a
# step 2x slower than 1); sleeping instead makes timings follow the work done. It applies to both contenders and
# must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rapgpt.model import GPT, GPTConfig, preset_config
from rapgpt.training.loop import compile_blocks, train_step
from rapgpt.training.runtime import Runtime

# (preset, vocabulary, batch, sequence length): a character vocabulary of lyrics, and GPT-2's BPE.
CASES = {"char-10m": ("char-10m", 128, 16, 256), "gpt2": ("gpt2", 50257, 4, 512)}


def hf_model(config: GPTConfig) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    hf = GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
                    n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
                    embd_pdrop=config.dropout, attn_pdrop=config.dropout, bos_token_id=0, eos_token_id=0)
    hf._attn_implementation = "sdpa"
    return GPT2LMHeadModel(hf)


def stepper(name: str, config: GPTConfig, precision: str, batch: int, seq: int) -> Callable[[], None]:
    """A function doing one training step of the named contender on a fixed random batch."""
    runtime = Runtime(torch.device("cpu"), precision)
    tokens = torch.randint(0, config.vocab_size, (batch, seq + 1))
    if name == "hf":
        model = hf_model(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

        def step() -> None:
            with runtime.autocast():
                loss = model(input_ids=tokens[:, :seq], labels=tokens[:, :seq]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step
    from rapgpt.training.config import TrainConfig
    from rapgpt.training.optim import make_optimizer

    model = GPT(config).train()
    if name == "rapgpt --compile":
        compile_blocks(model)
    optimizer = make_optimizer(model, TrainConfig(lr=1e-4, optimizer="adamw"), runtime.device)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batches = [(tokens[:, :seq], tokens[:, 1:])]
    return lambda: train_step(model, optimizer, batches, runtime, 1.0, scaler)


def measure(case: str, precision: str, contenders: list[str], steps: int,
            warmup: int) -> dict[str, tuple[float, float]]:
    """Median (wall-clock, CPU) seconds per step of each contender, their steps interleaved."""
    preset, vocab, batch, seq = CASES[case]
    config = preset_config(preset, vocab, dropout=0.0)
    torch.manual_seed(0)
    steppers = {name: stepper(name, config, precision, batch, seq) for name in contenders}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(steps):
        for name, step in steppers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


def report(case: str, precision: str, threads: int, contenders: list[str], steps: int, warmup: int) -> None:
    torch.set_num_threads(threads)
    _, _, batch, seq = CASES[case]
    result = measure(case, precision, contenders, steps, warmup)
    hf_wall, hf_cpu = result["hf"]
    for name, (wall, cpu) in result.items():
        print(f"{case:<9} {f'{batch}x{seq}':>6} {precision:>9} {threads:>7} {name:<17} {wall * 1e3:>8.0f} "
              f"{batch * seq / wall:>8.0f} {hf_wall / wall:>5.2f}x {cpu * 1e3:>8.0f} {hf_cpu / cpu:>5.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--precision", choices=["fp32", "bf16", "all"], default="all")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each contender")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens here)")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts to measure, e.g. 1,2")
    parser.add_argument("--compile", action="store_true", help="also time rapgpt with --compile")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single measurement, in-process
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    contenders = ["hf", "rapgpt"] + (["rapgpt --compile"] if args.compile else [])
    if args.one:
        report(args.case, args.precision, int(args.threads), contenders, args.steps, args.warmup)
        return
    print(f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, median of {args.steps} "
          "interleaved steps; HF = transformers GPT2LMHeadModel (sdpa attention), same config, batch, precision, "
          "fused AdamW")
    print(f"{'case':<9} {'batch':>6} {'precision':>9} {'threads':>7} {'contender':<17} {'ms/step':>8} {'tokens/s':>8} "
          f"{'vs HF':>6} {'cpu ms':>8} {'vs HF':>6}", flush=True)
    # Each measurement runs in a fresh process: what an earlier one left in the memory allocator changes how much
    # page faulting a step does, which would favour whichever contender allocates most.
    for threads in args.threads.split(","):
        for case in list(CASES) if args.case == "all" else [args.case]:
            for precision in ["fp32", "bf16"] if args.precision == "all" else [args.precision]:
                subprocess.run([sys.executable, __file__, "--one", "--case", case, "--precision", precision,
                                "--threads", threads, "--steps", str(args.steps), "--warmup", str(args.warmup)]
                               + (["--compile"] if args.compile else []), check=True)


if __name__ == "__main__":
    main()
