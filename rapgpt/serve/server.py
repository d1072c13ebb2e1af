"""`rapgpt serve`: load a run (and its fine-tuned adapters) and serve it over HTTP with the browser front end.

Each adapter is merged into a model of its own (full weights per adapter, at the base model's speed), and the
engine keeps one batch per model, so requests for different adapters never share a batch and each gets exactly
its adapter's weights.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from rapgpt.checkpoint import read_run_config
from rapgpt.errors import ConfigError
from rapgpt.generate.params import InferenceConfig
from rapgpt.generate.threads import decode_threads
from rapgpt.serve.config import ServeConfig
from rapgpt.serve.engine import Engine, ServedModel
from rapgpt.serve.judge import DB_NAME

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_adapters(specs: Sequence[str]) -> dict[str, Path]:
    """NAME=RUN2 pairs as given on the command line, checked: valid distinct names, existing directories."""
    adapters: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise ConfigError(f"--adapter {spec!r} must be NAME=RUN2, e.g. --adapter eminem=runs/eminem-lora")
        if not NAME.fullmatch(name):
            raise ConfigError(f"adapter name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if name in adapters:
            raise ConfigError(f"two adapters are named {name!r}: give each a distinct name")
        if not Path(path).is_dir():
            raise ConfigError(f"adapter directory not found: {path} (train one with `rapgpt finetune`)")
        adapters[name] = Path(path)
    return adapters


def base_name(run_dir: str | Path) -> str:
    """The base model's name in the API: its run directory's name, made a valid model name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(run_dir).resolve().name).lstrip("._-")[:64]
    return name or "base"


def load_models(run_dir: str | Path, adapters: dict[str, Path],
                config: InferenceConfig | None = None) -> list[ServedModel]:
    """The base model, then one merged model per adapter, each prepared for inference."""
    from rapgpt.generate.inference import load_for_inference
    from rapgpt.generate.lexicon import run_speller

    config = config or InferenceConfig()
    load = functools.partial(load_for_inference, run_dir, config.precision, config.quantize, device=config.device)
    base = base_name(run_dir)
    model, tokenizer = load()
    served = [ServedModel(base, model, tokenizer, speller=run_speller(run_dir, tokenizer, None))]
    for name, adapter_dir in adapters.items():
        merged, adapter_tokenizer = load(adapter=adapter_dir)
        if adapter_tokenizer != tokenizer:
            raise ConfigError(f"adapter {name!r} uses another tokenizer than the base model {run_dir}")
        speller = run_speller(run_dir, tokenizer, None, adapter_dir)
        served.append(ServedModel(name, merged, tokenizer, parent=base, speller=speller))
        log.info("adapter %s from %s merged into its own copy of %s", name, adapter_dir, base)
    return served


def serve(model: str | Path, adapters: Sequence[str] = (), config: ServeConfig | None = None) -> None:
    """Serve `model` (a run directory) until interrupted. The HTTP server starts at once and answers /health with
    503 while the models load; a model that fails to load stops it with the reason. Without `config.api_key`,
    $RAPGPT_API_KEY is the key, if set. The blind test's answers go to `config.judge_db`, by default a file in the
    run directory."""
    try:
        import uvicorn

        from rapgpt.serve.api import ServeSettings, create_app
    except ImportError as e:
        raise ConfigError(f"serving needs the serve extra ({e.name} is missing): pip install 'rapgpt[serve]'") from e

    config = config or ServeConfig()
    api_key = config.api_key or os.environ.get("RAPGPT_API_KEY") or None
    read_run_config(model)  # a missing or broken run fails here, before the server starts
    adapter_dirs = parse_adapters(adapters)
    if base_name(model) in adapter_dirs:
        raise ConfigError(f"adapter name {base_name(model)!r} is the base model's name: choose another")
    torch.set_num_threads(config.threads or decode_threads())
    host, port = config.host, config.port
    if host not in LOOPBACK and not api_key:
        log.warning("serving on %s without --api-key: anyone who can reach this address can use the model", host)

    server: uvicorn.Server | None = None

    def stop_server(error: BaseException) -> None:
        if server is not None:
            server.should_exit = True

    engine = Engine(lambda: load_models(model, adapter_dirs, config), config,
                    on_failure=stop_server)
    judge_db = Path(config.judge_db) if config.judge_db else Path(model) / DB_NAME
    app = create_app(engine, ServeSettings(api_key=api_key, cors_origins=config.cors_origins, judge_db=judge_db))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5))
    shown = f"[{host}]" if ":" in host else host
    print(f"rapgpt: open http://{shown}:{port}/ in a browser (API docs at /docs, OpenAI API at /v1)", flush=True)
    engine.start()
    try:
        server.run()
    finally:
        engine.stop()
    if engine.error is not None:
        raise engine.error
