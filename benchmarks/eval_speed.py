"""How long `rapgpt eval` takes, step by step, on the real corpus; the n-gram index against a Python set.

    PYTHONPATH=. python benchmarks/eval_speed.py [--data ../shared/data/rap-genius-35] [--artist Eminem] [--chunks 1000]

Scores 50 generations of 128 characters (what 128 tokens of the char-10m model give) against rap-genius-35:
the generations are stand-ins cut from real songs (kept in memory only), since speed does not depend on who wrote
them. Generation itself is timed with `rapgpt.generate` on a randomly initialised char-10m model when that module
is installed; otherwise a forward pass per new token without a cache is timed, an upper bound.
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
from rapgpt.evaluate.originality import NgramIndex, originality
from rapgpt.evaluate.references import Song
from rapgpt.evaluate.scoring import score_generations
from rapgpt.evaluate.text import words
from rapgpt.model import GPT, preset_config

N_GENERATIONS, NEW_TOKENS = 50, 128


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def set_index(texts: list[str], n: int = 8) -> set[tuple[str, ...]]:
    """The obvious peer: every n-gram of words as a tuple in a Python set."""
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        ws = words(text)
        grams.update(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))
    return grams


def set_lookup(grams: set[tuple[str, ...]], texts: list[str], n: int = 8) -> list[list[bool]]:
    return [[tuple(ws[i : i + n]) in grams for i in range(len(ws) - n + 1)] for ws in map(words, texts)]


def generation_seconds(prompts: int, samples: int) -> tuple[float, str]:
    tok = CharTokenizer([chr(c) for c in range(32, 127)] + ["\n"])
    torch.manual_seed(0)
    model = GPT(preset_config("char-10m", tok.vocab_size)).eval()
    prompt_texts = ["the city never sleeps\n"] * prompts
    try:
        from rapgpt.evaluate.run import generate_texts

        _, seconds = timed(generate_texts, model, tok, prompt_texts, samples, NEW_TOKENS, 0)
        return seconds, "rapgpt.generate, KV cache"
    except ImportError:
        x = torch.tensor([tok.encode(p) for p in prompt_texts] * samples)
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(NEW_TOKENS):
                x = torch.cat([x, model(x[:, -256:], last_only=True)[0][:, -1].argmax(-1, keepdim=True)], 1)
        return time.perf_counter() - start, "no rapgpt.generate here: forward pass per token, no cache (upper bound)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/rap-genius-35"))
    parser.add_argument("--artist", default="Eminem")
    parser.add_argument("--chunks", type=int, default=1000, help="reference chunks per side for the classifier")
    args = parser.parse_args()
    songs = [Song(s["artist"], s["title"], s["lyrics"]) for f in sorted(Path(args.data).glob("*.json"))
             for s in json.loads(f.read_text(encoding="utf-8")) if s.get("lyrics")]  # fmt: skip
    texts = [s.text for s in songs]
    n_words = sum(len(words(t)) for t in texts)
    print(f"{len(songs):,} songs, {n_words / 1e6:.1f} M words; torch threads {torch.get_num_threads()}", file=sys.stderr)

    index, t_index = timed(NgramIndex.build, texts)
    grams, t_set = timed(set_index, texts)
    rng = random.Random(0)
    gens = []
    for song in rng.sample(songs, N_GENERATIONS):
        start = rng.randrange(max(1, len(song.text) - 128))
        gens.append(song.text[start : start + 128])
    _, t_lookup = timed(lambda: [originality(g, index) for g in gens])

    _, t_set_lookup = timed(set_lookup, grams, gens)
    del grams

    prompts = 10
    t_generate, how = generation_seconds(prompts, N_GENERATIONS // prompts)
    tok = CharTokenizer.from_texts(texts[:200])
    torch.manual_seed(0)
    model = GPT(preset_config("char-10m", tok.vocab_size)).eval()
    stream = np.array(tok.encode("\n".join(texts[:300])), dtype=np.int64)
    _, t_intrinsic = timed(intrinsic, model, tok, stream, 16384)

    generations = {"base": [gens[i : i + 5] for i in range(0, N_GENERATIONS, 5)]}
    times = {}
    with tempfile.TemporaryDirectory() as cache:
        for run in ("cold cache", "warm cache"):
            _, times[run] = timed(score_generations, [f"p{i}\n" for i in range(10)], generations, songs, args.artist,
                                  Embedder(cache_dir=cache), index, max_train_chunks=args.chunks,
                                  max_heldout_chunks=args.chunks // 4)  # fmt: skip

    print(f"\nn-gram index over {Path(args.data).name} ({n_words / 1e6:.1f} M words, {len(index):,} distinct 8-grams)")
    print(f"| {'step':<34} | {'rapgpt (s)':>10} | {'peer':<24} | {'peer (s)':>8} | {'speed-up':>8} |")
    print(f"| {'-' * 34} | {'-' * 10} | {'-' * 24} | {'-' * 8} | {'-' * 8} |")
    print(f"| {'build (sorted uint64 hashes)':<34} | {t_index:>10.1f} | {'Python set of tuples':<24} | "
          f"{t_set:>8.1f} | {t_set / t_index:>7.1f}x |")  # fmt: skip
    print(f"| {'look up 50 generations':<34} | {t_lookup:>10.3f} | {'Python set of tuples':<24} | "
          f"{t_set_lookup:>8.3f} | {t_set_lookup / t_lookup:>7.1f}x |")  # fmt: skip
    print(f"\nEvaluating {N_GENERATIONS} generations of {NEW_TOKENS} tokens (char-10m), {args.chunks} reference chunks "
          f"per side, {args.chunks // 4} held out")  # fmt: skip
    print(f"| {'step':<44} | {'seconds':>8} |\n| {'-' * 44} | {'-' * 8} |")
    rows = [
        (f"generation ({how})", t_generate),
        ("intrinsic, 16,384 tokens", t_intrinsic),
        ("n-gram index build (once per dataset, cached)", t_index),
        ("scoring, cold cache (embeds the references)", times["cold cache"]),
        ("scoring, warm cache", times["warm cache"]),
    ]
    for name, seconds in rows:
        print(f"| {name[:44]:<44} | {seconds:>8.1f} |")
    first = t_generate + t_intrinsic + t_index + times["cold cache"]
    later = t_generate + t_intrinsic + times["warm cache"]
    print(f"| {'total, first run on a dataset':<44} | {first:>8.1f} |\n| {'total, later runs':<44} | {later:>8.1f} |")


if __name__ == "__main__":
    main()
