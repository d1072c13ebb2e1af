"""Rhyme and real words in generated verses: free sampling against rhyme schemes and the lexicon, beside real songs.

    PYTHONPATH=. python benchmarks/rhyme_quality.py --model RUN [--adapter RUN2] --real DATA \\
        [--verses 40] [--prompts 10] [--lines 16] [--candidates 4 8 16] [--schemes free AABB ABAB] [--timed 2]

One table per model (the run and, with --adapter, the run with its adapter), from one run. Its rows: with the
lexicon on and off, free writing with one candidate a line (today's sampling, one line after the other), then each
of `--schemes` at each K of `--candidates`: `--verses` verses of `--lines` lines, continuing the first `--prompts`
prompts of `rapgpt eval`'s set in turn (temperature 0.8, top-p 0.95, seeded). The scheme `free` with K > 1 keeps
the likeliest of K candidate lines (no rhyme); a rhyme scheme keeps the best by likelihood and rhyme, its
candidates guided toward rhyming line ends (`--rhyme-guide`). The last row: the same measures on `--verses` chunks
of `--lines` lines of the real songs in DATA (e.g. the held-out artist's dataset). Columns:

    scheme, K, lexicon   how the row was written
    partner    lines that rhyme with the line their scheme pairs them with (rhyme schemes only; for AABB only
               every second line has a partner, so the end-rhyme rate below is about the mean of the partner rate
               and the chance rate of the other lines)
    end rhyme  lines that rhyme with one of the two lines before (`rapgpt eval`'s measure, slant rhymes count)
    perfect    the same with perfect rhymes only (the same sounds from the stressed vowel to the end)
    density    rhyme density (DopeLearning), in vowels per word
    real words words in CMUdict or in the training text's lexicon
    logp/tok   the model's mean log-probability per token of the kept text (without the lexicon's mask)
    distinct-2 distinct word bigrams over all bigrams, per verse
    copied 8g  word 8-grams found in the training text
    s/verse    seconds to write one verse alone (`--timed` verses, each alone: a user's wait); with `--clock cpu`,
               CPU seconds (use it with --threads 1 on a shared machine)
    x free     s/verse over the s/verse of free writing with K = 1 and the same lexicon setting

Quality rows are written in batches (every verse of a row together); the seconds are measured separately, one verse
at a time, so that a row's cost is what one request pays. The machine may be shared: the CPU and the load are
printed, and rows are only comparable with each other within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pronouncing
import torch

from rapgpt.data.dataset import TokenDataset
from rapgpt.evaluate.craft import distinct_n, rhyme_density
from rapgpt.evaluate.originality import NgramIndex, originality
from rapgpt.evaluate.references import dataset_songs
from rapgpt.evaluate.run import default_cache_dir, fit_prompts, read_prompts, training_index
from rapgpt.evaluate.text import chunks, lyric_lines, words
from rapgpt.generate import BatchDecoder, SamplingParams, load_for_inference
from rapgpt.generate.lexicon import Lexicon, Speller, run_dataset, run_lexicon
from rapgpt.generate.params import WritingParams
from rapgpt.generate.scheme import mean_logprob, partners, write
from rapgpt.rhyme import perfect_rhyme, rhymes, spelled_out

BATCH = 64  # sequences decoded together while writing a row's verses


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def line_ends(text: str) -> list[str]:
    return [words(line)[-1] for line in lyric_lines(text) if words(line)]


def partner_rate(text: str, scheme: str, skip: int = 0) -> float:
    """Share of the lines with a scheme partner that rhyme with it (their nearest partner); the first `skip`
    lines (a prompt) count as partners but are not counted themselves."""
    ends = line_ends(text)
    pairs = [(i, partners(scheme, i)[-1]) for i in range(skip, len(ends)) if partners(scheme, i)]
    return sum(rhymes(ends[i], ends[j]) for i, j in pairs) / len(pairs) if pairs else 0.0


def end_rhyme(text: str, skip: int = 0, rhyme=rhymes) -> float:
    """Share of lines that rhyme with one of the two lines before (`rapgpt eval`'s end-rhyme measure, repeated
    lines kept); the first `skip` lines (a prompt) are rhymed with but not counted."""
    ends = line_ends(text)
    counted = range(max(1, skip), len(ends))
    hits = sum(any(rhyme(ends[i], ends[k]) for i in range(max(0, k - 2), k)) for k in counted)
    return hits / len(counted) if counted else 0.0


def real_word_share(text: str, lexicon: Lexicon) -> float:
    ws = words(text)
    real = [w in lexicon or bool(pronouncing.phones_for_word(spelled_out(w))) or bool(pronouncing.phones_for_word(w))
            for w in ws]
    return float(np.mean(real)) if real else 0.0


def measure(texts: Sequence[str], scheme: str | None, lexicon: Lexicon, index: NgramIndex,
            logprobs: Sequence[float] | None, seconds: float | None,
            prompts: Sequence[str] | None = None) -> dict[str, float | None]:
    """The row of a table. Rhymes are counted with the prompt's lines as the verse's first lines (the scheme
    counts them), every other measure on the written text alone."""
    def mean(values):
        return float(np.mean(list(values)))

    prompts = prompts or [""] * len(texts)
    skips = [len(line_ends(p)) for p in prompts]
    return {
        "partner": mean(partner_rate(p + t, scheme, n) for p, t, n in zip(prompts, texts, skips)) if scheme else None,
        "end rhyme": mean(end_rhyme(p + t, n) for p, t, n in zip(prompts, texts, skips)),
        "perfect": mean(end_rhyme(p + t, n, perfect_rhyme) for p, t, n in zip(prompts, texts, skips)),
        "density": mean(rhyme_density(t) for t in texts),
        "real words": mean(real_word_share(t, lexicon) for t in texts),
        "logp/tok": mean(logprobs) if logprobs else None,
        "distinct-2": mean(distinct_n(words(t), 2) for t in texts),
        "copied 8g": mean(originality(t, index).ngram_share for t in texts),
        "s/verse": seconds,
        "x free": None,
    }


def write_verses(model, tokenizer, prompts: list[str], writing: WritingParams, speller: Speller | None,
                 seed: int) -> list:
    params = SamplingParams(max_new_tokens=160, temperature=0.8, top_p=0.95, seed=seed)
    decoder = BatchDecoder(model, tokenizer, max_batch=min(BATCH, len(prompts) * writing.num_candidates))
    return write(decoder, prompts, params, writing, speller)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds_per_verse(model, tokenizer, prompts: list[str], writing: WritingParams, speller: Speller | None,
                      timed: int, seed: int, clock: str = "wall") -> float:
    """Seconds to write one verse alone, by `clock`: wall time, or on a shared machine the process's CPU time,
    which leaves out the time spent waiting for a core."""
    now = CLOCKS[clock]
    start = now()
    for i in range(timed):
        write_verses(model, tokenizer, [prompts[i % len(prompts)]], writing, speller, seed + 1000 + i)
    return (now() - start) / max(1, timed)


PERCENT = ("partner", "end rhyme", "perfect", "real words", "copied 8g")
ROW_KEY = ("scheme", "K", "lexicon")  # the columns that say how a row was written


def format_table(rows: list[tuple[tuple[str, str, str], dict]]) -> str:
    """A markdown table: the row's key (scheme, K, lexicon), then its measures."""
    columns = list(rows[0][1])
    out = ["| " + " | ".join((*ROW_KEY, *columns)) + " |", "|---|---:|---|" + "---:|" * len(columns)]
    for key, row in rows:
        cells = []
        for c in columns:
            v = row[c]
            cells.append("–" if v is None else f"{v:.1%}" if c in PERCENT else f"{v:.3f}" if c == "logp/tok"
                         else f"{v:.1f}x" if c == "x free" else f"{v:.2f}")
        out.append("| " + " | ".join((*key, *cells)) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="a character model's run directory")
    ap.add_argument("--adapter", type=Path, help="a LoRA adapter trained on --model: measured as a second model")
    ap.add_argument("--real", required=True, type=Path, help="a prepared dataset of the real songs to compare with")
    ap.add_argument("--verses", type=int, default=40)
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("--lines", type=int, default=16)
    ap.add_argument("--candidates", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--schemes", nargs="+", default=["free", "AABB", "ABAB"],
                    help="free here: the likeliest of K candidate lines (free with K = 1 is always measured)")
    ap.add_argument("--rhyme-guide", type=float, default=WritingParams.rhyme_guide,
                    help="how much a rhyme raises a candidate's line break (0: no guide)")
    ap.add_argument("--timed", type=int, default=2, help="verses written alone to time each row")
    ap.add_argument("--time-lexicon-on-only", action="store_true",
                    help="time only the rows with the lexicon on (the cost comparison is within them)")
    ap.add_argument("--skip", nargs="+", default=[], choices=["base", "adapter"],
                    help="leave a model out (to measure the base and the adapter in two processes at once)")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="time the verses by wall clock or by this process's CPU time (a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                    help="where the lexicons and the n-gram index are kept (the runs may be read-only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rhymes("warm", "storm")  # CMUdict loads on first use (seconds): not inside a timed verse
    started = time.perf_counter()
    load = os.getloadavg()[0]
    prompts = read_prompts()[: args.prompts]
    models = {"base": (args.model, None)}
    if args.adapter:
        models["adapter"] = (args.model, args.adapter)
    for name in args.skip:
        models.pop(name, None)
    index = training_index(TokenDataset(run_dataset(args.model)), args.cache_dir)
    print(f"# Rhyme quality: {args.model}{' + ' + str(args.adapter) if args.adapter else ''}\n")
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} thread(s), load average {load:.1f} at the start; "
          f"{args.verses} verses of {args.lines} lines from {len(prompts)} prompts per row, K = {args.candidates}, "
          f"{args.clock} seconds from {args.timed} verse(s) written alone per row\n")
    real = [c for s in dataset_songs(TokenDataset(args.real)) for c in chunks(s.text, args.lines)]
    real = random.Random(args.seed).sample(real, min(args.verses, len(real)))
    for name, (run, adapter) in models.items():
        model, tokenizer = load_for_inference(run, adapter=adapter)
        lexicon_dir = args.cache_dir / "lexicons" / name  # rebuilt when its runs' data change
        lexicon_dir.mkdir(parents=True, exist_ok=True)
        lexicon = run_lexicon(run, adapter, cache_dir=lexicon_dir)
        speller = Speller(lexicon, tokenizer)
        fitted = fit_prompts(prompts, tokenizer)
        requests = [fitted[i % len(fitted)] for i in range(args.verses)]
        rows = []
        # Row by row in order of cost, each with the lexicon on then off, so that a run cut short has the cheap
        # comparisons; the table lists the rows with the lexicon on first.
        configs = [("free", 1)] + [(s, k) for k in args.candidates for s in args.schemes if (s, k) != ("free", 1)]
        free_seconds: dict[bool, float | None] = {}  # free writing's, K = 1, with the lexicon on and off
        for scheme, k in configs:
            for use_lexicon in (True, False):
                writing = WritingParams(scheme=scheme, lines=args.lines, candidates=k, rhyme_guide=args.rhyme_guide)
                spell = speller if use_lexicon else None
                verses = write_verses(model, tokenizer, requests, writing, spell, args.seed)
                timed = use_lexicon or not args.time_lexicon_on_only
                seconds = (seconds_per_verse(model, tokenizer, fitted, writing, spell, args.timed, args.seed,
                                             args.clock) if timed else None)
                row = measure([v.text for v in verses], scheme if scheme != "free" else None, lexicon, index,
                              [mean_logprob(v) for v in verses], seconds, requests)
                free = free_seconds.setdefault(use_lexicon, seconds)
                row["x free"] = seconds / free if seconds and free else None
                rows.append(((scheme, str(k), "on" if use_lexicon else "off"), row))
                print(f"  {name} ({time.perf_counter() - started:.0f} s): {format_table([rows[-1]]).splitlines()[-1]}",
                      flush=True)
        rows.sort(key=lambda r: r[0][2] == "off")  # stable: each half keeps the order of cost
        rows.append(((f"real songs of {args.real.name} ({len(real)} chunks)", "–", "–"),
                     measure(real, None, lexicon, index, None, None)))
        print(f"\n## {name}\n\n{format_table(rows)}\n", flush=True)

    read_as = ", ".join(f"{s} {np.mean([partner_rate(t, s) for t in real]):.1%}" for s in args.schemes if s != "free")
    print(f"The real chunks' partner rate, if read as written to a scheme: {read_as}\n")
    print(f"total {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
