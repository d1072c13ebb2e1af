"""How long `rapgpt eval` takes, step by step, on the real corpus; the n-gram index against a Python set.

    PYTHONPATH=. python benchmarks/eval_speed.py [--data ../shared/data/rap-genius-35] [--artist Eminem] [--chunks 600]

Scores 50 generations of 128 characters (what 128 tokens of the char-10m model give) against rap-genius-35:
the generations are stand-ins cut from real songs (kept in memory only), since speed does not depend on who wrote
them. Generation is timed with `rapgpt.generate` on a randomly initialised char-10m model when that module is
installed. Wall-clock and CPU seconds are both printed: on a shared machine the wall clock also counts waiting.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.evaluate.embed import Embedder
from rapgpt.evaluate.intrinsic import intrinsic
from rapgpt.evaluate.originality import NgramIndex, ngram_hashes, word_hashes
from rapgpt.evaluate.references import Song
from rapgpt.evaluate.scoring import score_generations
from rapgpt.evaluate.text import words
from rapgpt.model import GPT, preset_config

N_GENERATIONS, NEW_TOKENS = 50, 128


def timed(fn, *args, **kwargs):
    """The result, the wall-clock seconds and the CPU seconds of all threads (the machine may be shared)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def set_index(texts: list[str], n: int = 8) -> set[tuple[str, ...]]:
    """The obvious peer: every n-gram of words as a tuple in a Python set."""
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        ws = words(text)
        grams.update(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))
    return grams


def set_lookup(grams: set[tuple[str, ...]], texts: list[str], n: int = 8) -> list[list[bool]]:
    return [[tuple(ws[i : i + n]) in grams for i in range(len(ws) - n + 1)] for ws in map(words, texts)]


def generation_seconds(prompts: int, samples: int) -> tuple[float, float] | None:
    """Sampling with the project's sampler on a randomly initialised char-10m model (None when not installed)."""
    try:
        from rapgpt.generate import generate  # noqa: F401
    except ImportError:
        return None
    from rapgpt.evaluate.run import generate_texts

    tok = CharTokenizer([chr(c) for c in range(32, 127)] + ["\n"])
    torch.manual_seed(0)
    model = GPT(preset_config("char-10m", tok.vocab_size)).eval()
    return timed(generate_texts, model, tok, ["the city never sleeps\n"] * prompts, samples, NEW_TOKENS, 0)[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/rap-genius-35"))
    parser.add_argument("--artist", default="Eminem")
    parser.add_argument("--chunks", type=int, default=600, help="reference chunks per side for the classifier")
    args = parser.parse_args()
    songs = [Song(s["artist"], s["title"], s["lyrics"]) for f in sorted(Path(args.data).glob("*.json"))
             for s in json.loads(f.read_text(encoding="utf-8")) if s.get("lyrics")]  # fmt: skip
    texts = [s.text for s in songs]
    n_words = sum(len(words(t)) for t in texts)
    threads = torch.get_num_threads()
    print(f"{len(songs):,} songs, {n_words / 1e6:.1f} M words; torch threads {threads}", file=sys.stderr)

    index, *t_index = timed(NgramIndex.build, texts)
    grams, *t_set = timed(set_index, texts)
    rng = random.Random(0)
    gens = []
    for song in rng.sample(songs, N_GENERATIONS):
        start = rng.randrange(max(1, len(song.text) - 128))
        gens.append(song.text[start : start + 128])
    _, *t_lookup = timed(lambda: [index.contains(ngram_hashes(word_hashes(words(g)), 8)) for g in gens])
    _, *t_set_lookup = timed(set_lookup, grams, gens)
    del grams

    print(f"\nn-gram index over {Path(args.data).name} ({n_words / 1e6:.1f} M words, {len(index):,} distinct 8-grams, "
          f"{index.hashes.nbytes / 2**20:.0f} MB)")  # fmt: skip
    print("| step | rapgpt: sorted uint64 hashes (s) | peer: Python set of word tuples (s) | speed-up |")
    print("| --- | --- | --- | --- |")
    for name, ours, peer in (("build", t_index, t_set), ("look up 50 generations", t_lookup, t_set_lookup)):
        print(f"| {name} | {ours[0]:.3f} | {peer[0]:.3f} | {peer[0] / ours[0]:.1f}x |")

    tok = CharTokenizer.from_texts(texts[:200])
    torch.manual_seed(0)
    model = GPT(preset_config("char-10m", tok.vocab_size)).eval()
    stream = np.array(tok.encode("\n".join(texts[:300])), dtype=np.int64)
    rows = {"generation (rapgpt.generate, 10 prompts x 5)": generation_seconds(10, N_GENERATIONS // 10)}
    rows["intrinsic, 16,384 tokens"] = timed(intrinsic, model, tok, stream, 16384)[1:]
    rows["n-gram index build (once per dataset)"] = t_index
    generations = {"base": [gens[i : i + 5] for i in range(0, N_GENERATIONS, 5)]}
    with tempfile.TemporaryDirectory() as cache:
        for run in ("cold cache: embeds the references", "warm cache"):
            rows[f"scoring, {run}"] = timed(
                score_generations, [f"p{i}\n" for i in range(10)], generations, songs, args.artist,
                Embedder(cache_dir=cache), index, max_train_chunks=args.chunks, max_heldout_chunks=args.chunks // 4,
            )[1:]  # fmt: skip
    print(f"\nEvaluating {N_GENERATIONS} generations of {NEW_TOKENS} tokens (char-10m) against {args.artist}, "
          f"{args.chunks} reference chunks per side, {args.chunks // 4} held out")  # fmt: skip
    print("| step | wall (s) | CPU (s) |\n| --- | --- | --- |")
    for name, t in rows.items():
        print(f"| {name} | " + (f"{t[0]:.1f} | {t[1]:.1f} |" if t else "not installed | |"))


if __name__ == "__main__":
    main()
