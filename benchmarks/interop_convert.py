"""Time of rapgpt's Hugging Face conversions against transformers doing the same reading and writing.

    python benchmarks/interop_convert.py [--preset gpt2] [--repeats 3]

A random GPT-2 of the preset's size is saved by transformers; then, alternately in one run:
  import   `import_hf` (read the checkpoint, write a rapgpt run) vs from_pretrained + save_pretrained;
  export   `export_hf` (read the run, write the HF directory)   vs from_pretrained + save_pretrained;
  load     `load_run` of the imported run                        vs from_pretrained of the checkpoint.
Each cell is the median over the repeats; the ratio is transformers' time over rapgpt's (> 1: rapgpt is faster).
The imported model's logits are checked against transformers' before timing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rapgpt.checkpoint import load_run
from rapgpt.interop.hf_export import export_hf
from rapgpt.interop.hf_import import import_hf
from rapgpt.model import PRESETS


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hf_copy(src: Path, dst: Path) -> None:
    GPT2LMHeadModel.from_pretrained(src, local_files_only=True).save_pretrained(dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2", choices=[p for p in PRESETS if p.startswith("gpt2")])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    p = PRESETS[args.preset]
    config = GPT2Config(n_layer=p["n_layer"], n_head=p["n_head"], n_embd=p["n_embd"], n_positions=p["block_size"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        hf_model = GPT2LMHeadModel(config).eval()
        hf_model.save_pretrained(tmp / "hf")
        model, _, _ = load_run(import_hf(tmp / "hf", tmp / "run"))
        idx = torch.randint(0, config.vocab_size, (1, 64))
        with torch.no_grad():
            error = (model(idx)[0] - hf_model(idx).logits).abs().max().item()
        del model, hf_model
        print(f"{args.preset}: {config.n_layer} layers, width {config.n_embd}; imported logits within {error:.1e}")

        tasks = {
            "import": (lambda: import_hf(tmp / "hf", tmp / "run", force=True),
                       lambda: hf_copy(tmp / "hf", tmp / "hf-copy")),
            "export": (lambda: export_hf(tmp / "run", tmp / "out", force=True),
                       lambda: hf_copy(tmp / "hf", tmp / "hf-copy")),
            "load": (lambda: load_run(tmp / "run"),
                     lambda: GPT2LMHeadModel.from_pretrained(tmp / "hf", local_files_only=True)),
        }
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in tasks}
        for _ in range(args.repeats):
            for name, (ours, theirs) in tasks.items():
                times[name][0].append(seconds(ours))
                shutil.rmtree(tmp / "hf-copy", ignore_errors=True)
                times[name][1].append(seconds(theirs))
        print(f"{'task':<8}{'rapgpt s':>10}{'transformers s':>16}{'ratio':>8}")
        for name, (ours, theirs) in times.items():
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{name:<8}{a:>10.2f}{b:>16.2f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
