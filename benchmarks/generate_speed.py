"""Generation speed on CPU: rapgpt against Hugging Face transformers `generate` on identical weights.

One table from one run: decode tokens/s at batch 1 (a 16-token prompt, then greedy tokens) for the gpt2 (124M)
and char-10m presets in fp32, bf16 and int8, each against its peer measured in the same run with the same dtype
and threads (int8's peer is rapgpt's own fp32: transformers has no int8 CPU path for GPT-2); the share of the
memory-bandwidth floor (weight bytes read per token over the copy bandwidth measured here, read + write); time to
first token for a 512-token prompt; and tokens/s at batch 8.

Weights are random (speed does not depend on them), with the end-of-text embedding zeroed so that greedy decoding
never stops early. Each figure is the best of --repeats runs, and decode speed is (N - 1) tokens over the time of
an N-token run minus a 1-token run, so that the prompt's prefill is left out for both sides alike.

    python benchmarks/generate_speed.py                  # the full table (several minutes on 2 cores)
    python benchmarks/generate_speed.py --new-tokens 32 --models char-10m   # a quick look

On a machine shared with other work, compare --threads 1: with two threads, every parallel region waits for the
thread the scheduler parked, and the timings then measure the contention more than the code. `--threads 1
--clock cpu` counts CPU time instead of wall time, leaving out the time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import copy
import os
import string
import time
from collections.abc import Callable
from functools import partial

import torch

from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer
from rapgpt.generate import BatchDecoder, SamplingParams
from rapgpt.generate.inference import PRECISIONS, prepare_for_inference
from rapgpt.model import GPT, preset_config

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
VARIANTS = {"fp32": ("fp32", None), "bf16": ("bf16", None), "int8": ("fp32", "int8")}


def to_transformers(model: GPT, dtype: torch.dtype):
    """The same weights in a `GPT2LMHeadModel` (whose Conv1D layers store the transposed matrices)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    hf_config = GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    hf = GPT2LMHeadModel(hf_config)
    state = {k: (v.t() if k.endswith(CONV1D) else v) for k, v in model.state_dict().items()}
    hf.load_state_dict(state, strict=True)
    return hf.to(dtype).eval()


CLOCK = time.perf_counter  # or time.process_time: see --clock


def best_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = CLOCK()
        run()
        times.append(CLOCK() - start)
    return min(times)


def rapgpt_run(model: GPT, tokenizer: Tokenizer, prompts: list[str], new_tokens: int) -> Callable[[], None]:
    params = SamplingParams(temperature=0, max_new_tokens=new_tokens)

    def run() -> None:
        decoder = BatchDecoder(model, tokenizer, max_batch=len(prompts))
        for p in prompts:
            decoder.add(p, params)
        done = 0
        while decoder.has_work:
            done += sum(e.completion.completion_tokens for e in decoder.step() if e.completion)
        assert done == new_tokens * len(prompts), "a sequence stopped early"

    return run


def hf_run(hf, ids: torch.Tensor, new_tokens: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False)
        assert out.shape[1] == ids.shape[1] + new_tokens

    return run


def decode_rate(make: Callable[[int], Callable[[], None]], new_tokens: int, repeats: int, batch: int = 1) -> float:
    """Generated tokens per second once the prompt is in: an N-token run minus a 1-token run."""
    make(2)()  # warm-up
    full, first = best_time(make(new_tokens), repeats), best_time(make(1), repeats)
    return batch * (new_tokens - 1) / (full - first)


def copy_bandwidth(nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Bytes per second moved by a large copy, read + write (the buffers are far larger than the caches)."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    return 2 * nbytes / best_time(lambda: dst.copy_(src), repeats)


def weight_bytes_per_token(model: GPT, precision: str, quantize: str | None) -> int:
    """Bytes of weight matrices read to decode one token: every Linear and the output head (embeddings are
    looked up one row at a time; biases and norms are negligible)."""
    c = model.config
    per_weight = 1 if quantize == "int8" else PRECISIONS[precision].itemsize
    return per_weight * (c.n_layer * 12 * c.n_embd**2 + c.vocab_size * c.n_embd)


def setup(preset: str) -> tuple[GPT, Tokenizer, list[int]]:
    tokenizer = GPT2Tokenizer() if preset.startswith("gpt2") else CharTokenizer(list(string.printable[:-5]))
    torch.manual_seed(0)
    model = GPT(preset_config(preset, tokenizer.vocab_size, dropout=0.0)).eval()
    with torch.no_grad():
        model.transformer.wte.weight[tokenizer.eot_id] = 0
    return model, tokenizer


def prompt_of(tokenizer: Tokenizer, n_tokens: int, salt: int = 0) -> str:
    """A prompt that the decoder turns into exactly `n_tokens` (the start token included)."""
    words = " ".join(f"verse{salt} line {i} rhyme" for i in range(n_tokens))
    ids = tokenizer.encode(words)
    for cut in range(n_tokens - 1, 0, -1):
        text = tokenizer.decode(ids[:cut])
        if len(tokenizer.encode(text)) == n_tokens - 1:
            return text
    raise ValueError("no prompt of that length")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gpt2", "char-10m"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--new-tokens", type=int, default=256, help="tokens generated at batch 1")
    ap.add_argument("--batch-new-tokens", type=int, default=64, help="tokens generated per sequence at batch 8")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true", help="measure rapgpt alone")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: count the process's CPU time, not the time it waited for a core (one thread only)")
    args = ap.parse_args()
    if args.clock == "cpu":
        if args.threads != 1:
            ap.error("--clock cpu needs --threads 1 (with more threads, CPU time adds up the threads' spinning)")
        global CLOCK
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    bandwidth = copy_bandwidth()
    print(f"{args.clock} clock, threads {args.threads}, copy bandwidth (read + write) {bandwidth / 1e9:.1f} GB/s, {args.new_tokens} new "
          f"tokens at batch 1 and {args.batch_new_tokens} at batch 8, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    header = f"{'model':9} {'variant':7} {'measure':26} {'rapgpt':>10} {'peer':>10} {'ratio':>7}  note"
    print(header + "\n" + "-" * len(header))

    def row(preset, variant, measure, ours, peer, note=""):
        ratio = f"{ours / peer:6.2f}x" if peer else ""
        peer_text = f"{peer:10.2f}" if peer else f"{'':10}"
        print(f"{preset:9} {variant:7} {measure:26} {ours:10.2f} {peer_text} {ratio:>7}  {note}", flush=True)

    for preset in args.models:
        base, tokenizer = setup(preset)
        prompt = prompt_of(tokenizer, 16)
        ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(prompt)])
        new_tokens = min(args.new_tokens, base.config.block_size - ids.size(1))  # the peer cannot go past its context
        fp32_rate = None
        for variant in args.variants:
            precision, quantize = VARIANTS[variant]
            model = prepare_for_inference(copy.deepcopy(base), PRECISIONS[precision], quantize)
            ours = decode_rate(partial(rapgpt_run, model, tokenizer, [prompt]), new_tokens, args.repeats)
            floor = bandwidth / weight_bytes_per_token(base, precision, quantize)
            note = f"{ours / floor:.0%} of the bandwidth floor ({floor:.1f} tokens/s), {new_tokens} tokens"
            if variant == "int8":
                row(preset, variant, "decode tok/s (b1) vs fp32", ours, fp32_rate, note)
                continue
            peer = None
            if not args.skip_peer:
                hf = to_transformers(base, PRECISIONS[precision])
                peer = decode_rate(partial(hf_run, hf, ids), new_tokens, args.repeats)
            row(preset, variant, "decode tok/s (b1) vs HF", ours, peer, note)
            if variant == "fp32":
                fp32_rate = ours
            if preset == "gpt2":
                long_prompt = prompt_of(tokenizer, 512, salt=1)
                long_ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(long_prompt)])
                ttft = best_time(rapgpt_run(model, tokenizer, [long_prompt], 1), args.repeats)
                peer_ttft = None if args.skip_peer else best_time(hf_run(hf, long_ids, 1), args.repeats)
                row(preset, variant, "first token, 512 prompt (s)", ttft, peer_ttft, "lower is better")
                prompts = [prompt_of(tokenizer, 16, salt=i) for i in range(8)]
                batch_ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(p) for p in prompts])
                ours8 = decode_rate(partial(rapgpt_run, model, tokenizer, prompts), args.batch_new_tokens,
                                    args.repeats, batch=8)
                peer8 = None if args.skip_peer else decode_rate(
                    partial(hf_run, hf, batch_ids), args.batch_new_tokens, args.repeats, batch=8)
                row(preset, variant, "decode tok/s (batch 8)", ours8, peer8)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
