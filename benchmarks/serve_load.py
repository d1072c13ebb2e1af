"""Load on `rapgpt serve`: 1, 8 and 32 concurrent streaming clients against a char-10m model, on loopback.

The server runs as its own process (`python -m rapgpt serve`, as a user starts it), so its peak memory is its
own. Each client streams `POST /api/generate` requests back to back, then finishes the request it is in; every
level is bounded in time and in requests. Each level is compared with the single client measured in the same run
(continuous batching should multiply the aggregate tokens/s as clients are added) and with the library decoding as
many sequences in one batch, kept full, after each round (`library`, and the server's `share` of it): the most the
server could give that many clients on this machine. The levels take turns in short
rounds (1, 8, 32, 1, 8, 32, ...), so that on a shared machine a change in its load falls on all of them alike, and
each round has a server process of its own: on some machines a process's decoding speed is set when it starts and
differs between processes by several percent (up to a third on a shared VM), so one process would be one draw.

Time to first token (TTFT) is from sending a request to its first text event; inter-token latency (ITL) is the gap
between consecutive text events of one request. The decoding speed of one client's requests (from each one's first
token to its last) is compared with the library's on the same run, measured after each round's server has stopped,
in a new process as the server was: serving should cost the stream little. It is given twice: by the
server's own clock (the `timings` of each answer: streaming, detokenizing and the event loop included, this client's
parsing left out but for the core it takes) and as this client received the events; on two cores the client's own
work shows in the second. The clients speak HTTP/1.0 over asyncio's streams and read the events line by line, so
that measuring takes as little of the machine as it can. Unless `--run` names a trained run, the model is a randomly
initialised one of `--preset` (char-10m by default) whose end-of-text token is made unlikely, so that every request
writes its whole budget.

    python -m benchmarks.serve_load [--clients 1 8 32] [--duration 10] [--max-new-tokens 64]   (from the root)
    python -m benchmarks.serve_load --preset gpt2 --clients 1 --threads 1   # serving against the library
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import string
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

from rapgpt.checkpoint import save_run
from rapgpt.data.tokenizer import CharTokenizer, GPT2Tokenizer
from rapgpt.generate.threads import decode_threads
from rapgpt.model import GPT, preset_config

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["the city lights ", "late night ", "i came up ", "rhymes on the ", "\n", "money talk ", "yeah "]
MAX_REQUESTS_PER_CLIENT = 200
REQUEST_TIMEOUT = 120.0  # seconds a client waits for the next line of an answer


def write_random_run(preset: str, run_dir: Path) -> Path:
    """A random model of `preset` (GPT-2's tokenizer for the gpt2 presets, else characters of printable ASCII)
    whose end-of-text logit sits far below the others."""
    if preset.startswith("gpt2"):
        tokenizer = GPT2Tokenizer()
    else:
        tokenizer = CharTokenizer(sorted(set(string.printable) - {"\x0b", "\x0c", "\r"}))
    torch.manual_seed(0)
    model = GPT(preset_config(preset, tokenizer.vocab_size, dropout=0.0))
    with torch.no_grad():
        bias = torch.randn(model.config.n_embd)
        bias *= 10 / bias.norm()
        model.transformer.ln_f.bias.copy_(bias)
        model.transformer.wte.weight[tokenizer.eot_id] = -0.5 * bias
    return save_run(run_dir, model, tokenizer)


@dataclass
class Level:
    clients: int
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    tokens: int = 0
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    decode_tokens: int = 0  # tokens after each request's first, and the seconds they took (its decoding speed)
    decode_seconds: float = 0.0  # as the client received them
    server_decode_seconds: float = 0.0  # as the server reports them (its `timings`), the client's own work left out
    library_tokens: int = 0  # the library decoding as many sequences at once, kept full, and the seconds it took
    library_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return self.decode_tokens / self.decode_seconds if self.decode_seconds else 0.0

    @property
    def server_decode_tokens_per_second(self) -> float:
        return self.decode_tokens / self.server_decode_seconds if self.server_decode_seconds else 0.0

    @property
    def library_tokens_per_second(self) -> float:
        return self.library_tokens / self.library_seconds if self.library_seconds else 0.0


async def open_stream(port: int, body: dict) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """POST `body` to /api/generate as HTTP/1.0, whose answer is the bare event stream up to the connection's end:
    reading it takes the client little CPU, which on a small machine the server's threads would miss."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body).encode()
    writer.write(b"POST /api/generate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    status = await reader.readline()
    while (await reader.readline()).strip():  # the headers
        pass
    return reader, writer, status


async def one_request(port: int, prompt: str, max_new_tokens: int, level: Level) -> None:
    body = {"prompt": prompt, "max_new_tokens": max_new_tokens, "stream": True}
    start = time.perf_counter()
    first = last = None
    event = None
    writer = None
    try:
        reader, writer, status = await open_stream(port, body)
        if status.split()[1:2] != [b"200"]:
            level.errors += 1
            return
        while raw := await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT):
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                now = time.perf_counter()
                if event == "text":
                    if last is None:
                        level.ttft.append(now - start)
                        first = now
                    else:
                        level.itl.append(now - last)
                    last = now
                elif event == "done":
                    done = json.loads(line[6:])
                    tokens, timings = done["usage"]["completion_tokens"], done["timings"]
                    level.tokens += tokens
                    level.requests += 1
                    if first is not None and last > first:
                        level.decode_tokens += tokens - 1
                        level.decode_seconds += last - first
                        level.server_decode_seconds += timings["total"] - timings["first_token"]
                    return
                else:
                    level.errors += 1
                    return
        level.errors += 1  # the stream ended without a `done` event
    except (OSError, TimeoutError):
        level.errors += 1
    finally:
        if writer is not None:
            writer.close()


async def run_level(port: int, level: Level, duration: float, max_new_tokens: int) -> None:
    """One round of `level.clients` clients for `duration` seconds, added to `level`'s counts."""
    clients = level.clients
    start = time.perf_counter()

    async def client(i: int) -> None:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.perf_counter() - start >= duration:
                return
            await one_request(port, PROMPTS[(i + n) % len(PROMPTS)], max_new_tokens, level)

    await asyncio.gather(*(client(i) for i in range(clients)))
    level.seconds += time.perf_counter() - start


def library_peers(run: Path, precision: str, threads: int, max_new_tokens: int, requests: int, batches: list[int],
                  seconds: float) -> tuple[tuple[int, float], list[tuple[int, float]]]:
    """The same run decoded by rapgpt's library with the server's precision and threads. The peer of one client:
    `requests` sequences one at a time, timed from each one's first token to its last, as the server's clock times
    them (the tokens after each first one and their seconds). The peer of each level: `batch` sequences in flight,
    each finished one replaced at once, for `seconds` (its tokens and seconds), the most the server could give
    that many clients."""
    from rapgpt.generate import BatchDecoder, SamplingParams, load_for_inference

    torch.set_num_threads(threads)
    model, tokenizer = load_for_inference(run, precision=precision)
    params = SamplingParams(max_new_tokens=max_new_tokens)
    decoder = BatchDecoder(model, tokenizer, max_batch=1)
    tokens, spent = 0, 0.0
    for n in range(requests):
        decoder.add(PROMPTS[n % len(PROMPTS)], params)
        times = []
        while decoder.has_work:
            decoder.step()
            times.append(time.perf_counter())
        tokens += len(times) - 1
        spent += times[-1] - times[0]
    batched = []
    for batch in batches:
        decoder, written, n = BatchDecoder(model, tokenizer, max_batch=batch), 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            while len(decoder.running) + len(decoder.waiting) < batch:
                decoder.add(PROMPTS[n % len(PROMPTS)], params)
                n += 1
            written += sum(event.token is not None for event in decoder.step())
        batched.append((written, time.perf_counter() - start))
    return (tokens, spent), batched


def library_peers_in_new_process(run: Path, args: argparse.Namespace, one: Level, levels: list[Level]) -> None:
    """`library_peers` in a process of its own, started for this round as its server was, so that both sides draw
    a process's speed afresh each round."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        (tokens, seconds), batched = pool.submit(
            library_peers, run, args.precision, args.threads, args.max_new_tokens, len(PROMPTS),
            [lv.clients for lv in levels], args.duration / args.rounds / len(levels)).result()
    one.decode_tokens += tokens
    one.decode_seconds += seconds
    for level, (tokens, seconds) in zip(levels, batched, strict=True):
        level.library_tokens += tokens
        level.library_seconds += seconds


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "rapgpt", "serve", "--model", str(run), "--port", str(port),
               "--max-batch", str(args.max_batch), "--max-queue", str(args.max_queue), "--precision", args.precision,
               "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}: run {' '.join(command)} to see why")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit("the server did not become ready within 120 s")
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="serve this run instead of a random model")
    parser.add_argument("--preset", default="char-10m", help="the random model's preset (gpt2: GPT-2 124M)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of requests per level, all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="turns each level takes")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="token budget of each request")
    parser.add_argument("--max-batch", type=int, default=32, help="the server's --max-batch")
    parser.add_argument("--max-queue", type=int, default=64, help="the server's --max-queue")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="the server's --precision")
    parser.add_argument("--threads", type=int, default=decode_threads(), help="the server's --threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or write_random_run(args.preset, Path(tmp) / args.preset)
        levels = [Level(c) for c in args.clients]
        library = Level(1)
        memory = 0.0
        for _ in range(args.rounds):
            port = free_port()
            server = start_server(run, port, args)
            try:
                asyncio.run(run_level(port, Level(2), 1.0, 8))  # warm-up: first-call costs stay out of the measurements
                for level in levels:
                    asyncio.run(run_level(port, level, args.duration / args.rounds, args.max_new_tokens))
                memory = max(memory, peak_memory_mib(server.pid))
            finally:
                server.terminate()
                server.wait(30)
            library_peers_in_new_process(run, args, library, levels)

    base = levels[0].tokens_per_second
    print(f"rapgpt serve load: {run.name}, {args.max_new_tokens} tokens per request, {args.duration:g} s per level "
          f"in {args.rounds} rounds, max batch {args.max_batch}, {args.precision}, {args.threads} model thread(s) of "
          f"{os.cpu_count()} cores")
    header = f"{'clients':>7} {'requests':>8} {'errors':>6} {'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} " \
             f"{'ITL p99':>8} {'tokens/s':>9} {f'vs {levels[0].clients}':>7} {'library':>8} {'share':>6}"
    print(header)
    print("-" * len(header))
    for lv in levels:
        ms = [1000 * percentile(v, q) for v, q in ((lv.ttft, 50), (lv.ttft, 99), (lv.itl, 50), (lv.itl, 99))]
        print(f"{lv.clients:>7} {lv.requests:>8} {lv.errors:>6} {ms[0]:>7.0f}ms {ms[1]:>7.0f}ms {ms[2]:>6.1f}ms "
              f"{ms[3]:>6.1f}ms {lv.tokens_per_second:>9.0f} {lv.tokens_per_second / base:>6.1f}x "
              f"{lv.library_tokens_per_second:>8.0f} {lv.tokens_per_second / lv.library_tokens_per_second:>6.2f}")
    print(f"server peak memory (VmHWM): {memory:.0f} MiB")
    if 1 in (lv.clients for lv in levels):
        one = next(lv for lv in levels if lv.clients == 1)
        lib = library.decode_tokens_per_second
        served, received = one.server_decode_tokens_per_second, one.decode_tokens_per_second
        print(f"decoding one streamed request: the server {served:.1f} tokens/s by its own clock ({served / lib:.2f}x "
              f"the library's {lib:.1f} in the same run; within 5%: {'met' if served >= 0.95 * lib else 'MISSED'}); "
              f"{received:.1f} tokens/s as this client received them ({received / lib:.2f}x)")
    by_clients = {lv.clients: lv for lv in levels}
    if 1 in by_clients and 32 in by_clients:
        ratio = by_clients[32].tokens_per_second / by_clients[1].tokens_per_second
        p99 = percentile(by_clients[32].ttft, 99)
        errors = sum(lv.errors for lv in levels)
        def verdict(ok: bool) -> str:
            return "met" if ok else "MISSED"

        print(f"targets: tokens/s at 32 clients = {ratio:.1f}x one client (>= 4x: {verdict(ratio >= 4)}); "
              f"p99 TTFT at 32 clients = {p99:.2f} s (< 1 s: {verdict(p99 < 1)}); "
              f"errors = {errors} (0: {verdict(errors == 0)})")


if __name__ == "__main__":
    main()
