"""A LoRA fine-tuning step against a full-training step of the same model and batch, and their optimizer state.

Each step is forward + backward + AdamW on the trainable parameters, under bf16 autocast or in fp32. The two
kinds of step alternate, so that both see the same load on a shared machine; the table reports medians of the
wall-clock time and of the CPU time, which other processes on a busy machine disturb less.

    python -m benchmarks.lora_step [--preset char-10m] [--batch 16] [--steps 3]   (from the project root)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from rapgpt.lora import LoRAConfig, apply_lora, trainable_parameters_report
from rapgpt.model import GPT, preset_config


class Trainer:
    """One model with its optimizer over whatever parameters are trainable."""

    def __init__(self, model: GPT, precision: str):
        self.model = model.train()
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
        self.precision = precision

    def step(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """Wall-clock and CPU seconds (all threads) for one optimisation step."""
        start, cpu_start = time.perf_counter(), time.process_time()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        with autocast:
            _, loss = self.model(idx, targets)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start, time.process_time() - cpu_start

    def optimizer_bytes(self) -> int:
        return sum(t.nbytes for state in self.optimizer.state.values() for t in state.values() if torch.is_tensor(t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="char-10m", help="model preset")
    parser.add_argument("--vocab-size", type=int, default=128, help="a character vocabulary's size")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each kind, after one warm-up step")
    parser.add_argument("--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--lora-dropout", type=float, default=LoRAConfig.dropout, help="dropout on the LoRA path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = preset_config(args.preset, args.vocab_size)
    torch.manual_seed(0)
    idx = torch.randint(0, config.vocab_size, (args.batch, config.block_size + 1))
    idx, targets = idx[:, :-1], idx[:, 1:]
    lora_config = LoRAConfig(dropout=args.lora_dropout)
    print(f"{args.preset}: batch {args.batch}x{config.block_size}, {torch.get_num_threads()} threads, "
          f"LoRA rank {lora_config.rank}, dropout {lora_config.dropout} on {', '.join(lora_config.targets)}")

    rows = []
    for precision in args.precision:
        torch.manual_seed(0)
        full = Trainer(GPT(config), precision)
        lora_model = apply_lora(GPT(config), lora_config)
        lora = Trainer(lora_model, precision)
        if precision == args.precision[0]:
            print(trainable_parameters_report(lora_model))
        times: dict[str, list[tuple[float, float]]] = {"full": [], "lora": []}
        for i in range(args.steps + 1):
            for name, trainer in (("full", full), ("lora", lora)):
                seconds = trainer.step(idx, targets)
                if i:  # the first step of each warms up allocators and creates the optimizer state
                    times[name].append(seconds)
        wall = {name: statistics.median(w for w, _ in t) for name, t in times.items()}
        cpu = {name: statistics.median(c for _, c in t) for name, t in times.items()}
        state = {"full": full.optimizer_bytes(), "lora": lora.optimizer_bytes()}
        for name in ("full", "lora"):
            rows.append((precision, name, 1000 * wall[name], wall[name] / wall["full"], 1000 * cpu[name],
                         cpu[name] / cpu["full"], state[name] / 2**20, 100 * state[name] / state["full"]))

    print(f"\n{'precision':<10}{'step':<6}{'wall ms':>9}{'vs full':>9}{'CPU ms':>9}{'vs full':>9}"
          f"{'optimizer MiB':>15}{'vs full':>9}")
    for precision, name, wall_ms, wall_ratio, cpu_ms, cpu_ratio, mib, share in rows:
        print(f"{precision:<10}{name:<6}{wall_ms:>9.0f}{wall_ratio:>9.2f}{cpu_ms:>9.0f}{cpu_ratio:>9.2f}"
              f"{mib:>15.2f}{share:>8.1f}%")


if __name__ == "__main__":
    main()
