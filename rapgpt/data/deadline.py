"""HTTP GET with a deadline for the whole request, which `urllib` lacks.

`urlopen(timeout=...)` bounds each socket operation, so a server or proxy that sends a byte every few seconds keeps
a request open without end. Here a timer shuts down the request's socket when the deadline passes: a blocked read
then returns at once and the request fails with `DeadlineExceeded`. Everything else is urllib's (proxies from the
environment, redirects, TLS verification), because only its connection factory is wrapped.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any
from urllib.error import HTTPError
from urllib.request import HTTPHandler, HTTPSHandler, Request, build_opener


class DeadlineExceeded(TimeoutError):
    """Connecting and reading the whole answer took longer than the request's deadline."""


class _Watchdog:
    """Shuts down the sockets of one request when its time is up.

    It holds a duplicate of each socket, so that it still reaches the connection after TLS has taken over the
    original socket object; shutting down any descriptor of a socket ends the reads on all of them."""

    def __init__(self, seconds: float):
        self.expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            duplicate = sock.dup()
            self._sockets.append(duplicate)
            if self.expired:
                _shut_down(duplicate)
        return sock

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            self._finished = True
            for sock in self._sockets:
                sock.close()


def _shut_down(sock: socket.socket) -> None:
    with suppress(OSError):  # the peer may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHandler(HTTPHandler, HTTPSHandler):
    """urllib's HTTP and HTTPS handlers, with each socket they connect handed to the watchdog."""

    def __init__(self, watchdog: _Watchdog):
        HTTPSHandler.__init__(self)
        self.watchdog = watchdog

    def _connection(self, kind: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
        def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            connection = kind(host, **kwargs)
            # http.client opens every connection (also a proxy tunnel's, before TLS) through this attribute.
            connection._create_connection = lambda *args, **kw: self.watchdog.watch(  # type: ignore[attr-defined]
                socket.create_connection(*args, **kw))
            return connection

        return connect

    def http_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection(http.client.HTTPConnection), req)

    def https_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection(http.client.HTTPSConnection), req, context=self._context)


def fetch(request: Request, timeout: float, deadline: float) -> bytes:
    """The body of the answer to `request`. `timeout` bounds connecting and each read, as in `urlopen`; `deadline`
    bounds the whole request (a connection attempt still under way at the deadline is ended as soon as it
    connects), however the server spaces its bytes. Raises what `urlopen` raises (`HTTPError` for an error
    status), and `DeadlineExceeded` when the deadline cut the request short."""
    with _Watchdog(deadline) as watchdog:
        try:
            with build_opener(_WatchedHandler(watchdog)).open(request, timeout=timeout) as response:
                body = response.read()
            if not watchdog.expired:  # else the body may end where the socket was shut down
                return body
            cause = None
        except HTTPError:
            raise
        except (OSError, http.client.HTTPException) as e:
            if not watchdog.expired:
                raise
            cause = e
    raise DeadlineExceeded(f"no complete answer within {deadline:g}s") from cause
