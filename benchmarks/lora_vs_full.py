"""LoRA against a full fine-tune of the same base run, at equal wall clock, on one held-out artist.

Each contender starts from the same base run and trains on the artist's training split for `--minutes`; a full
fine-tune trains every weight (`--full FLAGS`: the loop's settings), each LoRA variant (`--variant NAME=FLAGS`:
`rapgpt finetune` flags, default: its defaults) trains an adapter. All are then scored on the same fixed windows of
the artist's validation split. The table gives each one's drop of the validation loss from the base's, that drop
as a share of the full fine-tune's, and the share of parameters it trains; the issue's goal is LoRA reaching 80%
of the full fine-tune's drop with under 5% of the parameters trainable. Contenders run one after the other; the
CPU and the machine's load are printed, as a busy machine gives each fewer steps in the same minutes; there,
`--steps N` gives each contender N steps instead, and the seconds column says what they cost.

    python -m benchmarks.lora_vs_full --base runs/rap --data data/eminem --minutes 5
    python -m benchmarks.lora_vs_full --base runs/rap --data data/eminem --minutes 2 \\
        --variant default= --variant projections="--targets attn.c_attn attn.c_proj mlp.c_fc mlp.c_proj"
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.heldout import fixed_windows, mean_loss
from benchmarks.machine import machine_line
from benchmarks.variants import parse_variant
from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.lora import load_adapted_run
from rapgpt.options import add_flags, flags_given, resolve
from rapgpt.training.config import FinetuneConfig, TrainConfig
from rapgpt.training.finetune import finetune
from rapgpt.training.loop import fit
from rapgpt.training.runtime import setup_runtime, teardown

# A full fine-tune's defaults: AdamW at a learning rate well below pretraining's, the short warmup of fine-tuning.
FULL_FLAGS = "--optimizer adamw --lr 3e-4 --warmup-steps 20 --weight-decay 0"
# Evaluated once at the start on one batch: the budget goes to training, the table's scores are computed after.
QUIET = {"eval_interval": 1_000_000, "eval_batches": 1}


@dataclass
class Result:
    name: str
    steps: int
    seconds: float
    trainable: int
    total: int
    val_loss: float


def parse_config(cls: type, flags: str, budget: dict, threads: int):
    """A settings object of `cls` from `rapgpt` command-line flags, with the benchmark's budget."""
    parser = argparse.ArgumentParser(prog=cls.__name__, add_help=False)
    add_flags(parser, cls)
    given = flags_given(parser.parse_args(shlex.split(flags)), cls)
    return resolve(cls, {**QUIET, **budget, "threads": threads}, given)


def full_finetune(base: Path, data: TokenDataset, config: TrainConfig, out: Path) -> tuple[torch.nn.Module, dict]:
    model, tokenizer, _ = load_run(base)
    runtime = setup_runtime(config.device, config.precision, config.threads)
    try:
        record = fit(model.train(), config, data.tokens("train"), data.tokens("val"), out, lambda *_: None, runtime,
                     identity={"benchmark": "full fine-tune"}, tokenizer=tokenizer)
    finally:
        teardown(runtime)
    return model, record


def lora_finetune(base: Path, data: TokenDataset, config: FinetuneConfig, out: Path) -> tuple[torch.nn.Module, dict]:
    record = finetune(base, data.path, out, config)
    model, _, _ = load_adapted_run(base, out, merge=False)
    return model, record


def table(base_loss: float, results: list[Result]) -> str:
    full = next((r for r in results if r.name == "full fine-tune"), None)
    full_drop = base_loss - full.val_loss if full else float("nan")
    rows = ["| contender | steps | seconds | trainable | val loss | drop | share of full's drop |",
            "|---|---|---|---|---|---|---|", f"| base | | | | {base_loss:.4f} | | |"]
    for r in results:
        drop = base_loss - r.val_loss
        rows.append(f"| {r.name} | {r.steps:,} | {r.seconds:.0f} | {r.trainable:,} ({r.trainable / r.total:.2%}) | "
                    f"{r.val_loss:.4f} | {drop:.4f} ({drop / base_loss:.1%}) | {drop / full_drop:.0%} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the base run (from `rapgpt train`)")
    ap.add_argument("--data", type=Path, required=True, help="the artist's dataset, with the base's tokenizer")
    ap.add_argument("--minutes", type=float, default=5.0, help="wall clock of each contender (default 5)")
    ap.add_argument("--steps", type=int, help="give each contender this many steps instead of --minutes")
    ap.add_argument("--full", default=FULL_FLAGS, metavar="FLAGS", help=f"full fine-tune settings ({FULL_FLAGS})")
    ap.add_argument("--variant", type=parse_variant, action="append", metavar="NAME=FLAGS",
                    help="a LoRA setting as `rapgpt finetune` flags (repeatable; default: default=)")
    ap.add_argument("--eval-windows", type=int, default=128, help="validation windows every model is scored on")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    data = TokenDataset(args.data)
    base_model, _, _ = load_run(args.base)
    val = fixed_windows(data.tokens("val"), base_model.config.block_size, args.eval_windows)
    torch.set_num_threads(args.threads)
    budget = {"max_steps": args.steps} if args.steps else {"max_minutes": args.minutes}
    print(machine_line())
    print(f"torch {torch.__version__}, {args.threads} threads; base {args.base}; data {args.data} "
          f"({len(data.tokens('train')):,} training tokens); {budget} each")
    base_loss = mean_loss(base_model, *val)
    total = base_model.num_params()
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lora-vs-full-") as tmp:
        contenders = [("full fine-tune", TrainConfig, args.full, full_finetune)]
        contenders += [(f"LoRA {name}", FinetuneConfig, flags, lora_finetune)
                       for name, flags in args.variant or [("default", "")]]
        for i, (name, cls, flags, train) in enumerate(contenders):
            config = parse_config(cls, flags, budget, args.threads)
            model, record = train(args.base, data, config, Path(tmp) / str(i))
            trainable = total if cls is TrainConfig else sum(
                p.numel() for n, p in model.named_parameters() if "lora_" in n)
            results.append(Result(name, record["step"], record["seconds"], trainable, total, mean_loss(model, *val)))
            print(f"{name}: {record['step']} steps, val loss {results[-1].val_loss:.4f}", flush=True)
    print(f"\n{machine_line()} (after the runs; {time.perf_counter() - started:.0f} s in all)")
    print(table(base_loss, results))


if __name__ == "__main__":
    main()
