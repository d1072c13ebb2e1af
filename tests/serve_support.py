"""Helpers for the serving tests: tiny models that write until told to stop, runs on disk, a running engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import uvicorn

from rapgpt.checkpoint import save_run
from rapgpt.data.tokenizer import CharTokenizer
from rapgpt.generate import Completion, SamplingParams, generate
from rapgpt.model import GPT, GPTConfig
from rapgpt.serve.config import ServeConfig
from rapgpt.serve.engine import Chunk, Engine, Failed, Finished, Result, ServedModel, Sink

ALPHABET = "abcdefghijklmnopqrstuvwxyz ,.!?'\n"
TOKENIZER = CharTokenizer(list(ALPHABET))


def tiny_model(seed: int = 0, block_size: int = 64) -> GPT:
    """A random character model that (almost surely) never ends a song on its own: the end-of-text token's
    embedding points against a large final LayerNorm bias, so its logit is about -50. Generations then end by
    their token budget, a stop string, a cancellation or the time limit, as the tests decide."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():
        bias = torch.randn(32)
        bias *= 10 / bias.norm()
        model.transformer.ln_f.bias.copy_(bias)
        model.transformer.wte.weight[TOKENIZER.eot_id] = -0.5 * bias
    return model.eval()


def make_run(run_dir: Path, seed: int = 0) -> Path:
    return save_run(run_dir, tiny_model(seed), TOKENIZER)


def reference(model: GPT, prompt: str, params: SamplingParams) -> Completion:
    """What the generation package writes for one prompt alone: the engine must give the same."""
    (completion,) = generate(model, TOKENIZER, [prompt], params)
    return completion


@contextmanager
def running_engine(models: Sequence[ServedModel] | Callable[[], Sequence[ServedModel]], wait: bool = True,
                   **settings) -> Iterator[Engine]:
    """An engine serving `models` (or what a loader returns), ready unless `wait` is False."""
    load = models if callable(models) else (lambda: models)
    engine = Engine(load, ServeConfig(**settings)).start()
    if wait:
        assert engine.wait_ready(60), engine.error
    try:
        yield engine
    finally:
        engine.stop()


async def collect(engine: Engine, prompt: str, params: SamplingParams, model: str) -> tuple[list[str], Result]:
    """Submit one request and await it: its text pieces and its result (raises the error it failed with)."""
    sink = Sink()
    engine.submit(prompt, params, model, sink)
    pieces: list[str] = []
    while True:
        message = await asyncio.wait_for(sink.get(), 60)
        if isinstance(message, Chunk):
            pieces.append(message.text)
        elif isinstance(message, Finished):
            return pieces, message.result
        elif isinstance(message, Failed):
            raise message.error


@contextmanager
def live_server(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a background thread; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
