"""`rapgpt collect`'s settings: where Genius is, the orders it lists songs in, and how requests are made.

Kept light (no HTTP or progress libraries) so that the command line can show the defaults without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapgpt.errors import ConfigError

API_ROOT = "https://api.genius.com"
WEB_ROOT = "https://genius.com"
TOKEN_ENV = "GENIUS_ACCESS_TOKEN"
SORTS = ("popularity", "title")  # the first is the default
SAVE_EVERY = 20  # new songs between two rewrites of an artist's file


@dataclass(frozen=True)
class RequestPolicy:
    """How politely and how stubbornly to talk to Genius. Times are in seconds."""

    min_interval: float = 0.5  # between the starts of two requests
    timeout: float = 20.0  # for connecting and for each read
    request_timeout: float = 60.0  # for a whole request, from connecting to the last byte of the answer
    retries: int = 5  # after the first attempt, on timeouts, connection errors, 429, 5xx and broken answers
    backoff: float = 2.0  # the first retry's delay, doubled for each further one
    max_backoff: float = 120.0
    max_retry_after: float = 900.0  # a 429 asking for a longer wait ends the run instead

    def validate(self) -> None:
        for name in ("min_interval", "backoff", "max_backoff", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("timeout", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
