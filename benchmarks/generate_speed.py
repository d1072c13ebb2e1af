"""Generation speed on CPU: rapgpt against Hugging Face transformers `generate` and llama.cpp on identical weights.

One table from one run: decode tokens/s at batch 1 (a 16-token prompt, then greedy tokens) for the gpt2 (124M)
and char-10m presets in fp32, bf16 and int8, each against its peers measured in the same run with the same threads:
transformers in the same dtype (int8's peer is rapgpt's own fp32: transformers has no int8 CPU path for GPT-2), and
llama.cpp through llama-cpp-python, when it is installed, on the GGUF export of the same weights (f32, bf16, q8_0;
its KV cache in its default f16); the share of the memory-bandwidth floor (weight bytes read per token over the
copy bandwidth measured here, read + write); time to first token for a 512-token prompt; and tokens/s at batch 8
(transformers only). The CPU model and its vector extensions head the table.

Weights are random (speed does not depend on them), with the end-of-text embedding zeroed so that greedy decoding
never stops early. Decode speed is (N - 1) tokens over the time of an N-token run minus a 1-token run, so that the
prompt's prefill is left out for both sides alike. Each time is the best of --repeats rounds, and each round runs
every contender in turn, so that a busy spell on the machine slows all of them alike. The floor uses the best copy
bandwidth seen during the run.

The CLI row times `rapgpt generate` (default settings but greedy, the variant's precision and quantization) as a
subprocess on the same weights saved as a run: the time that generate itself reports for its decoding loop
(streaming, detokenizing and printing included; loading left out), wall or CPU as --clock says; an N-token run
minus a 1-token run, as above. Its peer is the library loading the same run in a new process each round and timing
the same decoding; since a process's speed can be a draw of its own, both sides keep the median of --cli-repeats
rounds rather than the best.
`--threads 1 2 4` repeats the table for each thread count (the default is rapgpt's own, `decode_threads()`), the
sweep that shows which count decodes fastest on a machine.

    python benchmarks/generate_speed.py                  # the full table (several minutes on 2 cores)
    python benchmarks/generate_speed.py --new-tokens 32 --models char-10m   # a quick look
    python benchmarks/generate_speed.py --models gpt2 --threads 1 2 --skip-peer --skip-llama   # the thread sweep

On a machine shared with other work, compare --threads 1: with two threads, every parallel region waits for the
thread the scheduler parked, and the timings then measure the contention more than the code. `--threads 1
--clock cpu` counts CPU time instead of wall time, leaving out the time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing
import os
import re
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import torch

from rapgpt.checkpoint import save_run
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer, Tokenizer
from rapgpt.generate import BatchDecoder, SamplingParams
from rapgpt.generate.inference import load_for_inference, prepare_for_inference
from rapgpt.generate.threads import decode_threads
from rapgpt.model import GPT, preset_config
from rapgpt.precision import Precision

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
VARIANTS = {"fp32": ("fp32", None), "bf16": ("bf16", None), "int8": ("fp32", "int8")}
GGUF_TYPE = {"fp32": "f32", "bf16": "bf16", "int8": "q8_0"}  # llama.cpp's counterpart of each variant


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


def to_llama_cpp(model: GPT, tokenizer: Tokenizer, variant: str, threads: int, workdir: Path):
    """The same weights in llama.cpp: the GGUF export in the variant's type, loaded with `threads` threads."""
    import llama_cpp

    from rapgpt.interop.gguf_export import write_gguf

    path = workdir / f"{variant}.gguf"
    write_gguf(path, model, tokenizer, GGUF_TYPE[variant], "benchmark")
    return llama_cpp.Llama(str(path), n_ctx=model.config.block_size, n_batch=512, n_threads=threads,
                           n_threads_batch=threads, verbose=False)


def llama_run(llm, ids: list[int], new_tokens: int) -> Callable[[], None]:
    def run() -> None:
        llm.reset()  # no reuse of the previous run's cache
        for done, _ in enumerate(llm.generate(ids, temp=0.0), start=1):
            if done == new_tokens:
                break

    return run


def cpu_model() -> str:
    """The CPU's model name and the vector extensions that matter for these kernels, from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")
    flags = [f for f in wanted if f in fields.get("flags", "").split()]
    return f"{fields.get('model name', 'unknown CPU')} ({', '.join(flags) or 'no AVX2'})"


CLOCK = time.perf_counter  # or time.process_time: see --clock


def best_times(runs: dict, repeats: int, pick: Callable[[list[float]], float] = min) -> dict:
    """The best time of each run (or another `pick` of its times) over `repeats` rounds that take every run in
    turn, so that a busy spell on a shared machine slows every side alike. A run that returns a number has timed
    itself (the CLI's)."""
    times: dict = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = CLOCK()
            own = run()
            times[key].append(CLOCK() - start if own is None else own)
    return {key: pick(values) for key, values in times.items()}


def cli_run(run_dir: Path, prompt: str, variant: str, threads: int, new_tokens: int) -> Callable[[], float]:
    """`rapgpt generate` on the run, greedy, in the variant's precision; the run returns its decoding time."""
    precision, quantize = VARIANTS[variant]
    command = [sys.executable, "-m", "rapgpt", "generate", "--model", str(run_dir), "--prompt", prompt,
               "--temperature", "0", "--max-new-tokens", str(new_tokens), "--precision", precision,
               "--threads", str(threads), *(["--quantize", quantize] if quantize else [])]

    def run() -> float:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        tokens, wall, cpu = re.search(r"\[(\d+) tokens in ([\d.]+) s \(([\d.]+) s of CPU\)", done.stderr).groups()
        assert int(tokens) == new_tokens, "the CLI stopped early"
        return float(cpu if CLOCK is time.process_time else wall)

    return run


def library_process_run(run_dir: Path, prompt: str, variant: str, threads: int,
                        new_tokens: int) -> Callable[[], float]:
    """The CLI's peer: the library decoding what `cli_run` decodes, from the run loaded in a new process as the CLI
    loads it. On some machines a process's decoding speed is set when it starts and differs between processes by
    several percent, so each side draws it afresh each round; the run returns the time the process measured."""

    def run() -> float:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(time_library, run_dir, prompt, variant, threads, new_tokens,
                               CLOCK is time.process_time).result()

    return run


def time_library(run_dir: Path, prompt: str, variant: str, threads: int, new_tokens: int, cpu_clock: bool) -> float:
    """Seconds (wall, or CPU with `cpu_clock`) that the library takes to decode `new_tokens` after `prompt`, the
    model loaded from `run_dir` as `rapgpt generate` loads it."""
    torch.set_num_threads(threads)
    model, tokenizer = load_for_inference(run_dir, *VARIANTS[variant])
    run, clock = rapgpt_run(model, tokenizer, [prompt], new_tokens), time.process_time if cpu_clock else CLOCK
    start = clock()
    run()
    return clock() - start


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


def decode_rates(makers: dict, new_tokens: int, repeats: int, batch: int = 1,
                 pick: Callable[[list[float]], float] = min) -> dict:
    """Generated tokens per second once the prompt is in, for each maker of runs: an N-token run minus a
    1-token run, both the best (or another `pick`) of `repeats`."""
    runs = {}
    for key, make in makers.items():
        make(2)()  # warm-up
        runs[key, new_tokens], runs[key, 1] = make(new_tokens), make(1)
    best = best_times(runs, repeats, pick)
    return {key: batch * (new_tokens - 1) / (best[key, new_tokens] - best[key, 1]) for key in makers}


def copy_bandwidth(nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Bytes per second moved by a large copy, read + write (the buffers are far larger than the caches)."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def weight_bytes_per_token(model: GPT, precision: str, quantize: str | None) -> int:
    """Bytes of weight matrices read to decode one token: every Linear and the output head (embeddings are
    looked up one row at a time; biases and norms are negligible)."""
    c = model.config
    per_weight = 1 if quantize == "int8" else Precision(precision).dtype.itemsize
    return per_weight * (c.n_layer * 12 * c.n_embd**2 + c.vocab_size * c.n_embd)


def setup(preset: str) -> tuple[GPT, Tokenizer]:
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


def row(preset, variant, measure, ours, peer, llama=None, note="") -> None:
    columns = []
    for theirs in (peer, llama):
        columns += [f"{theirs:9.2f}", f"{ours / theirs:6.2f}x"] if theirs else [f"{'':9}", f"{'':7}"]
    print(f"{preset:9} {variant:7} {measure:27} {ours:9.2f} {' '.join(columns)}  {note}", flush=True)


def measure(args: argparse.Namespace, preset: str, threads: int, with_llama: bool, workdir: Path,
            bandwidth: float) -> float:
    """Print the rows of one model at one thread count; returns the best copy bandwidth seen so far (the floor
    uses it, so that it is not flattered)."""
    torch.set_num_threads(threads)
    base, tokenizer = setup(preset)
    prompt = prompt_of(tokenizer, 16)
    ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(prompt)])
    new_tokens = min(args.new_tokens, base.config.block_size - ids.size(1))  # the peer cannot go past its context
    models = {v: prepare_for_inference(copy.deepcopy(base), Precision(VARIANTS[v][0]).dtype, VARIANTS[v][1])
              for v in args.variants}
    peers = {} if args.skip_peer else {
        v: to_transformers(base, Precision(VARIANTS[v][0]).dtype) for v in args.variants if not VARIANTS[v][1]}
    llamas = {v: to_llama_cpp(base, tokenizer, v, threads, workdir) for v in args.variants if with_llama}
    run_dir = save_run(workdir / preset, base, tokenizer)
    makers = {("rapgpt", v): partial(rapgpt_run, m, tokenizer, [prompt]) for v, m in models.items()}
    makers |= {("peer", v): partial(hf_run, hf, ids) for v, hf in peers.items()}
    makers |= {("llama", v): partial(llama_run, llm, ids[0].tolist()) for v, llm in llamas.items()}
    rates = decode_rates(makers, new_tokens, args.repeats)
    if not args.skip_cli:  # new processes, each a draw of its own: the median of the rounds, not the luckiest
        processes = {("cli", v): partial(cli_run, run_dir, prompt, v, threads) for v in args.variants}
        processes |= {("library", v): partial(library_process_run, run_dir, prompt, v, threads)
                      for v in args.variants}
        rates |= decode_rates(processes, new_tokens, args.cli_repeats, pick=statistics.median)
    bandwidth = max(bandwidth, copy_bandwidth())
    for v in args.variants:
        precision, quantize = VARIANTS[v]
        ours = rates["rapgpt", v]
        floor = bandwidth / weight_bytes_per_token(base, precision, quantize)
        note = f"{ours / floor:4.0%} of the bandwidth floor ({floor:.0f} tok/s), {new_tokens} tokens, {threads} threads"
        llama = rates.get(("llama", v))
        if quantize:
            row(preset, v, "decode tok/s (b1) vs fp32", ours, rates.get(("rapgpt", "fp32")), llama, note)
        else:
            row(preset, v, "decode tok/s (b1) vs HF", ours, rates.get(("peer", v)), llama, note)
        if ("cli", v) in rates:
            row(preset, v, "CLI decode tok/s vs library", rates["cli", v], rates["library", v],
                note="rapgpt generate against the library, each in a new process per round")
    if preset != "gpt2":
        return bandwidth
    long_prompt = prompt_of(tokenizer, 512, salt=1)
    long_ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(long_prompt)])
    runs = {("rapgpt", v): rapgpt_run(m, tokenizer, [long_prompt], 1) for v, m in models.items()}
    runs |= {("peer", v): hf_run(hf, long_ids, 1) for v, hf in peers.items()}
    runs |= {("llama", v): llama_run(llm, long_ids[0].tolist(), 1) for v, llm in llamas.items()}
    ttft = best_times(runs, args.repeats)
    for v in args.variants:
        row(preset, v, "first token, 512 prompt (s)", ttft["rapgpt", v], ttft.get(("peer", v)),
            ttft.get(("llama", v)), "lower is better")
    prompts = [prompt_of(tokenizer, 16, salt=i) for i in range(8)]
    batch_ids = torch.tensor([BatchDecoder(base, tokenizer, 1).encode_prompt(p) for p in prompts])
    makers = {("rapgpt", v): partial(rapgpt_run, m, tokenizer, prompts) for v, m in models.items()}
    makers |= {("peer", v): partial(hf_run, hf, batch_ids) for v, hf in peers.items()}
    rates8 = decode_rates(makers, args.batch_new_tokens, args.repeats, batch=8)
    for v in args.variants:
        row(preset, v, "decode tok/s (batch 8)", rates8["rapgpt", v], rates8.get(("peer", v)))
    return bandwidth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gpt2", "char-10m"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, nargs="+", default=[decode_threads()],
                    help="thread counts, one table each (default: rapgpt's default for decoding)")
    ap.add_argument("--new-tokens", type=int, default=256, help="tokens generated at batch 1")
    ap.add_argument("--batch-new-tokens", type=int, default=64, help="tokens generated per sequence at batch 8")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true", help="measure rapgpt alone")
    ap.add_argument("--skip-llama", action="store_true", help="leave llama.cpp out even when it is installed")
    ap.add_argument("--skip-cli", action="store_true", help="leave out `rapgpt generate` as a subprocess")
    ap.add_argument("--cli-repeats", type=int, default=5,
                    help="rounds of the CLI and its library peer, each a new process (their median is kept)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: count the process's CPU time, not the time it waited for a core (one thread only)")
    args = ap.parse_args()
    if args.clock == "cpu":
        if args.threads != [1]:
            ap.error("--clock cpu needs --threads 1 (with more threads, CPU time adds up the threads' spinning)")
        global CLOCK
        CLOCK = time.process_time
    with_llama = not args.skip_llama and llama_cpp_installed()
    started = time.perf_counter()
    bandwidth = copy_bandwidth()
    print(f"{cpu_model()}\n{args.clock} clock, threads {args.threads} (default {decode_threads()}), "
          f"{args.new_tokens} new tokens at batch 1 and {args.batch_new_tokens} at batch 8, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; llama.cpp "
          f"{'in' if with_llama else 'left out (not installed or --skip-llama)'}\n")
    header = (f"{'model':9} {'variant':7} {'measure':27} {'rapgpt':>9} {'peer':>9} {'ratio':>7} {'llama.cpp':>9} "
              f"{'ratio':>7}  note")
    print(header + "\n" + "-" * len(header))
    with tempfile.TemporaryDirectory(prefix="generate-speed-") as workdir:
        for threads in args.threads:
            for preset in args.models:
                bandwidth = measure(args, preset, threads, with_llama, Path(workdir), bandwidth)
    print(f"\ncopy bandwidth (read + write), the best seen: {bandwidth / 1e9:.1f} GB/s; "
          f"{time.perf_counter() - started:.0f} s in all")


def llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
