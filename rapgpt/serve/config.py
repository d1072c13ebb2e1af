"""`rapgpt serve`'s settings: where it listens, who may call it, how many requests it takes, how the models run.

Kept free of torch and FastAPI so that the command line can show the defaults without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.errors import ConfigError
from rapgpt.generate.params import MAX_LINES, InferenceConfig
from rapgpt.options import setting


@dataclass(frozen=True)
class RequestLimits:
    """The bounds of one request's fields: what /api/generate and /v1/completions accept (`rapgpt.serve.schemas`)
    and what the studio's controls allow, which it reads from GET /api/limits."""

    prompt_chars: int = 8000
    max_new_tokens: int = 2048
    stop_strings: int = 4
    stop_chars: int = 64
    top_k: int = 100_000
    choices: int = 8  # completions per /v1/completions request: prompts x n
    max_temperature: float = 2.0
    # Below these, sampling's float32 arithmetic overflows (logits / temperature) or underflows (the top-p mass):
    # 0.01 is already as good as greedy, and top_p = 0.001 as good as keeping the one most likely token.
    min_temperature: float = 0.01
    min_top_p: float = 0.001
    min_repetition_penalty: float = 0.5
    max_repetition_penalty: float = 2.0
    max_penalty: float = 2.0  # frequency and presence penalties lie in [-max_penalty, max_penalty]
    candidates: int = 16  # candidate lines per line of a verse: each takes a place in the batch
    lines: int = MAX_LINES  # lines of a verse


LIMITS = RequestLimits()


@dataclass(frozen=True)
class ServeConfig(InferenceConfig):
    host: str = setting("127.0.0.1", "address to listen on; 0.0.0.0 exposes the server to the network (set "
                                     "--api-key)")
    port: int = setting(8000, "port to listen on")
    api_key: str | None = setting(
        None, "require 'Authorization: Bearer KEY' on /api, /v1 and /metrics; omitted: $RAPGPT_API_KEY if set, "
              "else no key", metavar="KEY")
    cors_origins: tuple[str, ...] = setting(
        (), "let web pages from ORIGIN (e.g. https://example.com, or *) call the API; repeatable",
        name="cors_origin", metavar="ORIGIN", repeat=True)
    max_queue: int = setting(
        64, "requests that may wait for a place in the batch; more are refused with 429 and Retry-After")
    max_batch: int = setting(32, "requests decoded together per model (each holds a KV cache for the whole context)")
    time_limit: float = setting(
        120.0, "stop a request this long after it arrived, returning the text so far", metavar="SECONDS")
    judge_db: str | None = setting(
        None, "SQLite file of the 'Real or model?' page: its excerpts (from `rapgpt eval --judge-db`) and answers; "
              "omitted: judge.sqlite in the --model run directory", metavar="PATH")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {self.max_batch}")
        if self.max_queue < 1:  # every request passes through the queue, if only until the next token boundary
            raise ConfigError(f"max_queue must be at least 1, got {self.max_queue}")
        if not self.time_limit > 0:
            raise ConfigError(f"the time limit must be a positive number of seconds, got {self.time_limit}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 1..65535, got {self.port}")
