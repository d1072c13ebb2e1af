"""`rapgpt prepare` throughput on a real corpus, beside raw tiktoken on the same text in the same run.

The peer is GPT-2's BPE alone: `encode_ordinary_batch` over every lyric of the corpus, already in memory. prepare
does that and everything around it: reading the JSON, cleaning, deduplicating, splitting, writing. Both rates are
in MB of lyric text (UTF-8) per second of wall-clock time; the ratio says what share of raw tokenizer speed the
whole pipeline keeps. The target is the whole rap-genius-35 corpus (33 MB, 6 M words) in under a minute.

    python -m benchmarks.prepare_throughput [--corpus ../shared/data/rap-genius-35] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rapgpt.data.prepare import prepare
from rapgpt.data.readers import read_sources
from rapgpt.data.tokenizer import gpt2_encoding

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rap-genius-35"
TARGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a corpus that `rapgpt prepare` reads")
    parser.add_argument("--workers", type=int, default=None, help="prepare's worker processes (default: cores)")
    args = parser.parse_args()

    texts = [song.lyrics for song in read_sources([args.corpus])]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    encoding = gpt2_encoding()
    start = time.perf_counter()
    n_tokens = sum(map(len, encoding.encode_ordinary_batch(texts)))
    peer_seconds = time.perf_counter() - start
    del texts

    rows = [("tiktoken encode_ordinary_batch", peer_seconds, f"{n_tokens:,} tokens")]
    for tokenizer in ("char", "gpt2"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            prepare([args.corpus], Path(tmp) / "ds", tokenizer, workers=args.workers, progress=False)
            seconds = time.perf_counter() - start
        verdict = "under target" if seconds < TARGET_SECONDS else f"OVER the {TARGET_SECONDS:.0f} s target"
        rows.append((f"rapgpt prepare --tokenizer {tokenizer}", seconds, verdict))

    print(f"corpus: {args.corpus} ({megabytes:.1f} MB of lyrics)")
    print(f"{'':34} {'seconds':>8} {'MB/s':>8} {'vs tiktoken':>12}  note")
    for name, seconds, note in rows:
        print(f"{name:34} {seconds:8.2f} {megabytes / seconds:8.2f} {peer_seconds / seconds:11.3f}x  {note}")


if __name__ == "__main__":
    main()
