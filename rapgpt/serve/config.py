"""`rapgpt serve`'s settings: where it listens, who may call it, how many requests it takes, how the models run.

Kept free of torch and FastAPI so that the command line can show the defaults without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.errors import ConfigError
from rapgpt.generate.params import InferenceConfig
from rapgpt.options import setting


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
