"""A CPU speedrun: rapgpt's recommended training against nanoGPT's, to the same validation bits per character.

In the spirit of the GPU "nanoGPT speedruns", the figure is the wall clock to a validation loss, not tokens per
second alone. One run on one machine:

1. nanoGPT (a copy of `../shared/peers/nanogpt`, run from a temporary folder) trains its character config on the
   prepared dataset (converted by the peer's `from_rapgpt_dataset.py`; the ids are the same) for `--minutes`:
   a short calibration measures its step time, and the budget becomes its `max_iters`, so that its cosine ends
   where its time does, as nanoGPT's config intends.
2. Each rapgpt setting (`--variant NAME=FLAGS`, default: the recommended one, `rapgpt train`'s defaults) trains
   with `--max-minutes` set to each `--fraction` of nanoGPT's measured training time.
3. Every final model is scored by this script on the same validation text (the first songs of the dataset's
   validation split), in bits per character, so that models of other tokenizers compare too: a variant may train
   on another dataset prepared from the same sources (`--variant bpe4k="--data data/rap-bpe4k"`). The target is
   nanoGPT's figure; a rapgpt setting meets the goal when it reaches it with half nanoGPT's time (fraction 0.5).
   Each rapgpt model also writes `--samples` songs at temperature 0.8, and the table gives the share of their words
   that are real (in CMUdict or seen in the training text).

Training time excludes evaluations on both sides (nanoGPT's eval steps are replaced by its median step; rapgpt
evaluates once at the start, on one batch, which its clock includes). The machine's CPU and load are printed, and
both contenders run one after the other with the same thread count, so other work on a shared machine disturbs
both; repeat the run to see the spread.

    python -m benchmarks.speedrun --data data/rap --minutes 20                     # the full speedrun
    python -m benchmarks.speedrun --data data/rap --minutes 3 --fraction 0.5 --fraction 1
    python -m benchmarks.speedrun --data data/rap --minutes 3 --variant muon= --variant adamw="--optimizer adamw"
    python -m benchmarks.speedrun --data data/rap --steps 200 --fraction 1    # equal steps, on a busy machine

On a machine busy with other work, `--steps N` budgets steps instead of minutes (nanoGPT gets N, rapgpt each
fraction of N): the quality per step is then untouched by the load, and ms/step says what the time would be.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.heldout import (
    bits_per_character,
    cmudict_words,
    real_word_share,
    samples,
    training_words,
    validation_text,
)
from benchmarks.machine import machine_line
from benchmarks.variants import parse_variant
from rapgpt.checkpoint import load_run
from rapgpt.data.dataset import TokenDataset
from rapgpt.data.tokenizer import Tokenizer
from rapgpt.model import GPT

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "nanogpt"
# The peer's README command: the char config at the model shape and batch of rapgpt's char-10m, bf16, no dropout.
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--dataset=rap", "--device=cpu", "--compile=False",
                "--dtype=bfloat16", "--batch_size=16", "--block_size=256", "--n_layer=6", "--n_head=6",
                "--n_embd=384", "--dropout=0.0", "--log_interval=1", "--always_save_checkpoint=True"]
ITER_LINE = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms")


@dataclass
class Result:
    name: str
    budget: str  # what the contender was given: minutes or steps
    train_s: float  # the training time it used, evaluations excluded
    steps: int
    tokens: int
    bpc: float = math.nan  # bits per character on the shared validation text
    real_words: float = math.nan  # share of real words in its samples


class PeerScoring(torch.nn.Module):
    """nanoGPT's model as `rapgpt.evaluate.intrinsic` calls a rapgpt GPT: model(x) -> (logits everywhere, None).
    (Given targets, nanoGPT returns the logits of every position; without, of the last one only.)"""

    def __init__(self, peer: torch.nn.Module):
        super().__init__()
        self.peer, self.config = peer, peer.config

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.peer(x, torch.zeros_like(x))[0], None


def env(threads: int) -> dict[str, str]:
    """The same threads for both contenders; sleeping OpenMP threads, as a shared machine needs."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_logged(cmd: list[str], cwd: Path, log: Path, threads: int) -> str:
    """Run a contender, its output into `log`; return the output, or stop with the log's tail on failure."""
    with open(log, "w") as f:
        code = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env(threads)).returncode
    out = log.read_text(errors="replace")
    if code:
        sys.exit(f"{shlex.join(cmd)} failed ({code}):\n{out[-3000:]}")
    return out


def nanogpt_steps(out: str) -> dict[int, float]:
    """Seconds of each logged iteration of nanoGPT's output."""
    return {int(m[1]): float(m[2]) / 1000 for line in out.splitlines() if (m := ITER_LINE.match(line))}


class NanoGPT:
    """The peer in a writable copy, with the dataset converted into its `data/rap`."""

    def __init__(self, peer: Path, data: Path, work: Path, threads: int):
        self.dir, self.threads = work / "nanogpt", threads
        shutil.copytree(peer, self.dir)
        run_logged([sys.executable, "from_rapgpt_dataset.py", str(data), "data/rap"], self.dir,
                   work / "nanogpt-convert.log", threads)

    def train(self, iters: int, eval_interval: int, log: Path, out_dir: str) -> dict[int, float]:
        args = [f"--max_iters={iters}", f"--lr_decay_iters={iters}", f"--eval_interval={eval_interval}",
                "--eval_iters=1", f"--out_dir={out_dir}"]
        return nanogpt_steps(run_logged([sys.executable, "-u", "train.py", *NANOGPT_ARGS, *args], self.dir, log,
                                        self.threads))

    def step_seconds(self, log: Path) -> float:
        """The median step time of a short run (its first steps, which include warm-up, are left out)."""
        times = self.train(8, 1000, log, "out-calibrate")
        return statistics.median(t for i, t in times.items() if i >= 3)

    def run(self, minutes: float, steps: int | None, work: Path) -> tuple[Result, PeerScoring]:
        """Train for `steps`, or for as many as fit in `minutes` at the calibrated step time."""
        iters = steps or max(10, round(60 * minutes / self.step_seconds(work / "nanogpt-calibrate.log")))
        times = self.train(iters, iters, work / "nanogpt.log", "out")
        # Iteration 0 includes the first evaluation, iteration `iters` the last one and the checkpoint: each
        # counts as a median step; the checkpoint is taken after `iters` steps.
        median = statistics.median(times.values())
        train_s = sum(t for i, t in times.items() if 0 < i < iters) + median
        sys.path.insert(0, str(self.dir))
        from model import GPT as PeerGPT, GPTConfig as PeerConfig  # noqa: I001 (the peer's module, found above)

        ckpt = torch.load(self.dir / "out" / "ckpt.pt", map_location="cpu", weights_only=False)
        model = PeerGPT(PeerConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
        result = Result("nanoGPT", f"{iters} steps" if steps else f"{minutes:g} min", train_s, iters, iters * 16 * 256)
        return result, PeerScoring(model.eval())


def rapgpt_run(name: str, flags: str, data: Path, budget: str, work: Path, threads: int) -> tuple[Result, GPT,
                                                                                          Tokenizer]:
    """Train one rapgpt setting for `budget`: "N steps" or "M min"."""
    amount, unit = budget.split()
    limit = ["--max-steps", amount] if unit == "steps" else ["--max-minutes", amount]
    out = work / f"rapgpt-{name}-{amount}"
    cmd = [sys.executable, "-m", "rapgpt", "train", "--data", str(data), "--out", str(out), *limit,
           "--eval-interval", "1000000", "--eval-batches", "1", "--threads", str(threads), *shlex.split(flags)]
    run_logged(cmd, ROOT, work / f"{out.name}.log", threads)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    model, tokenizer, _ = load_run(out)
    return Result(name, budget, last["seconds"], last["step"], last["tokens"]), model, tokenizer


def table(results: list[Result], target: float | None) -> str:
    rows = ["| system | budget | training time | steps | ms/step | tokens/s | val bits/char | reaches nanoGPT | "
            "real words |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"| {r.name} | {r.budget} | {r.train_s:.0f} s | {r.steps:,} | "
            f"{1000 * r.train_s / r.steps:,.0f} | {r.tokens / r.train_s:,.0f} | {r.bpc:.4f} | "
            f"{'-' if target is None else 'yes' if r.bpc <= target else 'no'} | "
            f"{'-' if math.isnan(r.real_words) else f'{r.real_words:.1%}'} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a character dataset made by `rapgpt prepare`")
    ap.add_argument("--minutes", type=float, default=20.0, help="nanoGPT's budget (default 20)")
    ap.add_argument("--steps", type=int, help="budget nanoGPT in steps instead (rapgpt: --fraction of them)")
    ap.add_argument("--fraction", type=float, action="append",
                    help="rapgpt's budget as a share of nanoGPT's training time or steps (repeatable; default 0.5)")
    ap.add_argument("--variant", type=parse_variant, action="append", metavar="NAME=FLAGS",
                    help="a rapgpt setting: `rapgpt train` flags (repeatable; default: recommended=)")
    ap.add_argument("--no-peer", action="store_true",
                    help="skip nanoGPT: compare the variants alone, each given --fraction x --minutes (or --steps)")
    ap.add_argument("--eval-chars", type=int, default=65536, help="characters of validation text to score on")
    ap.add_argument("--samples", type=int, default=8, help="songs each rapgpt model writes for the word count")
    ap.add_argument("--sample-chars", type=int, default=600, help="length of each sample, in characters")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--peer", type=Path, default=PEER, help="the nanoGPT copy (default ../shared/peers/nanogpt)")
    ap.add_argument("--keep", type=Path, help="keep the runs and logs in this folder (default: a temporary one)")
    args = ap.parse_args()
    fractions, variants = args.fraction or [0.5], args.variant or [("recommended", "")]
    data = TokenDataset(args.data)
    if data.tokenizer.kind != "char":
        sys.exit(f"{args.data} is a {data.tokenizer.kind!r} dataset: the speedrun compares character models")
    torch.set_num_threads(args.threads)
    songs = validation_text(data, args.eval_chars)
    chars = sum(map(len, songs))
    print(machine_line())
    print(f"torch {torch.__version__}, {args.threads} threads; data {args.data}; "
          f"scored on {len(songs)} validation songs ({chars:,} characters)")
    work = Path(args.keep or tempfile.mkdtemp(prefix="speedrun-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    known = cmudict_words() | training_words(data) if args.samples else frozenset()
    started = time.perf_counter()
    base_s = 60 * args.minutes
    if not args.no_peer:
        peer, model = NanoGPT(args.peer, args.data, work, args.threads).run(args.minutes, args.steps, work)
        peer.bpc = bits_per_character(model, data.tokenizer, songs)
        results.append(peer)
        base_s = peer.train_s
        print(f"nanoGPT: {peer.steps} steps in {peer.train_s:.0f} s, val {peer.bpc:.4f} bits/char", flush=True)
    for fraction in fractions:
        for name, flags in variants:
            budget = f"{round(fraction * args.steps)} steps" if args.steps else f"{fraction * base_s / 60:.3f} min"
            result, model, tokenizer = rapgpt_run(name, flags, args.data, budget, work, args.threads)
            result.bpc = bits_per_character(model, tokenizer, songs)
            if args.samples:
                per_token = chars / sum(map(len, tokenizer.encode_batch(songs)))
                texts = samples(model, tokenizer, args.samples, args.sample_chars, per_token)
                result.real_words = real_word_share(texts, known)
                print(f"--- a sample of {name} ---\n{texts[0][:300]}\n---")
            result.name = f"rapgpt {name} ({fraction:g}x)"
            results.append(result)
            print(f"{result.name}: {result.steps} steps in {result.train_s:.0f} s, val {result.bpc:.4f} bits/char",
                  flush=True)
    target = None if args.no_peer else results[0].bpc
    print(f"\n{machine_line()} (after the runs; {time.perf_counter() - started:.0f} s in all)")
    print(table(results, target))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
