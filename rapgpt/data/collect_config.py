"""`rapgpt collect`'s settings: where Genius is, the orders it lists songs in, and how requests are made.

Kept light (no HTTP or progress libraries) so that the command line can show the defaults without loading them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rapgpt.errors import ConfigError
from rapgpt.options import setting

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


@dataclass(frozen=True)
class CollectConfig:
    """The settings of one `rapgpt collect` run (its flags): what to collect and how to ask for it."""

    max_songs: int | None = setting(
        None, "at most N songs per artist, counting songs saved by earlier runs; omitted: all", metavar="N")
    token: str | None = setting(
        None, f"Genius API client access token; omitted: ${TOKEN_ENV} (get one at https://genius.com/api-clients)",
        metavar="TOKEN")
    sort: str = setting(SORTS[0], "order to collect songs in", choices=SORTS)
    include_features: bool = setting(
        False, "also collect songs where the artist is featured but not the primary artist")
    save_every: int = setting(
        SAVE_EVERY, "rewrite an artist's file after every N new songs (and always when the run ends)", metavar="N")
    min_interval: float = setting(
        RequestPolicy.min_interval, "least time between two requests to Genius", metavar="SECONDS")
    request_timeout: float = setting(
        RequestPolicy.request_timeout, "most time for one request, from connecting to the last byte of the answer; "
        "a request that takes longer counts as a timeout and is retried", metavar="SECONDS")
    retries: int = setting(
        RequestPolicy.retries, "retries of a request on timeouts, connection errors, 429, 5xx and broken answers, "
        "with exponential backoff")
    api_root: str = setting(API_ROOT, "Genius API base URL (change only for a mirror or a test server)", metavar="URL")
    web_root: str = setting(
        WEB_ROOT, "Genius web site base URL, for the lyrics pages (change only for a mirror or a test server)",
        metavar="URL")

    def arguments(self) -> dict[str, Any]:
        """`collect`'s keyword arguments: these settings, with the request ones gathered into its `policy`."""
        values = asdict(self)
        policy = {f.name: values.pop(f.name) for f in fields(RequestPolicy) if f.name in values}
        return values | {"policy": RequestPolicy(**policy)}
