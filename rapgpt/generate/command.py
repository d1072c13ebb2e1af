"""`rapgpt generate`: lyrics alone on stdout, streamed as they are written (prompt first); diagnostics on stderr.

Several samples run as one batch: the first is streamed live, each next one is shown (caught up, then live) once
the previous one ends, separated by an end-of-text line, the marker the model itself puts between songs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import torch

from rapgpt.data.tokenizer import EOT_TEXT
from rapgpt.generate.decoder import BatchDecoder, Completion, nth_sample_params
from rapgpt.generate.inference import cache_nbytes, format_bytes, load_for_inference
from rapgpt.generate.lexicon import run_speller
from rapgpt.generate.params import GenerateConfig, SamplingParams, WritingParams
from rapgpt.generate.scheme import LineWriter
from rapgpt.generate.threads import decode_threads

# Samples beyond this many wait for a free slot rather than growing the cache.
MAX_BATCH = 16


def generate_command(
    model: Path,
    prompt: str = "",
    params: SamplingParams | None = None,
    config: GenerateConfig | None = None,
    adapter: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    writing: WritingParams | None = None,
) -> list[Completion]:
    """Generate `config.num_samples` continuations of `prompt` with the run in `model` (and a LoRA `adapter`
    trained on it); sample i uses seed + i. `writing` asks for a rhyme scheme, candidate lines and the lexicon. The
    lyrics go to `out` (a verse a line at a time), diagnostics to `err` (stdout and stderr by default)."""
    params, config = params or SamplingParams(), config or GenerateConfig()
    writing = writing or WritingParams()
    num_samples = config.num_samples
    out, err = out or sys.stdout, err or sys.stderr
    torch.set_num_threads(config.threads or decode_threads())
    with _diagnostics_to(err):
        gpt, tokenizer = load_for_inference(model, config.precision, config.quantize, adapter=adapter,
                                              device=config.device)
        speller = run_speller(model, tokenizer, writing.lexicon, adapter)
        k = writing.num_candidates if writing.line_by_line else 1
        decoder = BatchDecoder(gpt, tokenizer, max_batch=min(num_samples * k, max(MAX_BATCH, k)))
        if config.cache_info:
            print(_cache_report(decoder, config.precision), file=err)
        writer = LineWriter(decoder)
        ids = [writer.add(prompt, nth_sample_params(params, i), writing, speller) for i in range(num_samples)]
        start, cpu_start = time.perf_counter(), time.process_time()
        completions = _show(writer, ids, prompt, out, config.stream_interval)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    for i, c in enumerate(completions):
        print(f"[sample {i + 1}/{num_samples}: {c.completion_tokens} tokens, finished by {c.finish_reason}, "
              f"seed {c.seed}]", file=err)
    total = sum(c.completion_tokens for c in completions)
    print(f"[{total} tokens in {elapsed:.3f} s ({cpu:.3f} s of CPU): {total / max(elapsed, 1e-9):.1f} tokens/s]",
          file=err)
    return completions


def _show(decoder: LineWriter, ids: list[int], prompt: str, out: TextIO, interval: float) -> list[Completion]:
    """Run the decoder, writing sample after sample to `out` and each one's text as it is known; `out` is flushed
    at most every `interval` seconds (the prompt and the first token at once), since each flush wakes the reader
    (a terminal, a pipe), whose work takes a core from decoding on a small machine."""
    texts = {i: "" for i in ids}
    done: dict[int, Completion] = {}
    current = 0
    out.write(prompt)
    out.flush()
    flushed = -math.inf
    while decoder.has_work:
        for event in decoder.step():
            texts[event.seq_id] += event.text
            if event.seq_id == ids[current]:
                out.write(event.text)
            if event.completion is not None:
                done[event.seq_id] = event.completion
        while ids[current] in done and current + 1 < len(ids):
            current += 1
            out.write(f"\n{EOT_TEXT}\n{prompt}{texts[ids[current]]}")
        if (now := time.perf_counter()) - flushed >= interval:
            out.flush()
            flushed = now
    out.write("\n")
    out.flush()
    return [done[i] for i in ids]


def _cache_report(decoder: BatchDecoder, precision: str) -> str:
    c = decoder.model.config
    dtype = decoder.cache[0].k.dtype
    bytes_each = dtype.itemsize
    formula = cache_nbytes(c, decoder.max_batch, dtype)
    allocated = sum(layer.nbytes for layer in decoder.cache)
    return (
        f"KV cache: batch {decoder.max_batch} x {c.n_layer} layers x {c.n_head} heads x {c.block_size} context x "
        f"{c.head_dim} head_dim x 2 (K and V) x {bytes_each} bytes ({precision}) = {format_bytes(formula)}; "
        f"allocated {format_bytes(allocated)}"
    )


@contextmanager
def _diagnostics_to(err: TextIO) -> Iterator[None]:
    """Show rapgpt's notices (model size, a shortened prompt) on `err` while the command runs."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("rapgpt")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
