"""The serving engine: one background thread owns the models and decodes every request in flight together.

Requests arrive from the event loop through `submit` and wait in a bounded queue. The engine thread keeps one
`BatchDecoder` per served model (the base model and each fine-tuned adapter, merged into weights of its own) and
admits queued requests into free batch slots at token boundaries; each step advances every running request by one
token, so throughput grows with concurrency (continuous batching). A batch never mixes models: with adapters,
the decoders take turns, one step each.

Pieces of text go back to each request's `Sink` (an asyncio queue on the caller's loop), one hand-over for all
requests of a loop per `stream_interval` (a request's first text, its end and failures at once). `cancel` (a
client that went away) and the per-request time limit stop a request at the next token boundary. Sampling itself
is the generation package's: the engine only schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rapgpt.data.tokenizer import Tokenizer
from rapgpt.errors import ConfigError, RapgptError
from rapgpt.generate import BatchDecoder, Completion, SamplingParams
from rapgpt.generate.lexicon import Speller
from rapgpt.generate.params import WritingParams
from rapgpt.generate.scheme import LineWriter
from rapgpt.model import GPT
from rapgpt.serve.config import ServeConfig
from rapgpt.serve.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A model the engine serves under `name`; `parent` names the base model of a fine-tuned one."""

    name: str
    model: GPT
    tokenizer: Tokenizer
    parent: str | None = None
    speller: Speller | None = None  # the lexicon of its training text, used unless turned off

    @property
    def context_length(self) -> int:
        return self.model.config.block_size

    def speller_for(self, writing: WritingParams) -> Speller | None:
        """The lexicon a request writes with. Raises ConfigError when it asks for one the model lacks."""
        if writing.lexicon == "corpus" and self.speller is None:
            raise ConfigError(f"the model {self.name!r} has no lexicon (its training data was not found by the "
                              "server): send lexicon null or \"off\"")
        return None if writing.lexicon == "off" else self.speller


class Unavailable(RapgptError):
    """The engine cannot take or finish a request now; the client may retry after `retry_after` seconds."""

    status = 503
    kind = "not_ready"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(Unavailable):
    status = 429
    kind = "queue_full"


class QueueTimeout(Unavailable):
    kind = "queue_timeout"


@dataclass(frozen=True)
class Result:
    """A finished generation. Times are in seconds from submission; `first_token` is None if none came."""

    text: str
    finish_reason: str  # "stop", "length", "eot", "time_limit" or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    seed: int
    queued: float
    first_token: float | None
    total: float


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str


@dataclass(frozen=True)
class Finished:
    index: int
    result: Result


@dataclass(frozen=True)
class Failed:
    index: int
    error: Exception


Message = Chunk | Finished | Failed


class Sink:
    """Receives the messages of one or more requests on the event loop that created it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Message] = asyncio.Queue()

    async def get(self) -> Message:
        return await self.queue.get()

    async def get_many(self) -> list[Message]:
        """At least one message: every one waiting, with the pieces of each request joined, so that a client that
        fell behind catches up in one write. Each request's messages keep their order."""
        messages = [await self.queue.get()]
        while not self.queue.empty():
            messages.append(self.queue.get_nowait())
        merged: list[Message] = []
        piece_at: dict[int, int] = {}  # request index -> position in `merged` of its pending Chunk
        for message in messages:
            if isinstance(message, Chunk) and message.index in piece_at:
                at = piece_at[message.index]
                merged[at] = Chunk(message.index, merged[at].text + message.text)
                continue
            if isinstance(message, Chunk):
                piece_at[message.index] = len(merged)
            else:
                piece_at.pop(message.index, None)
            merged.append(message)
        return merged


@dataclass(eq=False)
class Ticket:
    """One request's place in the engine. `index` tells apart the requests that share a sink."""

    model: str
    prompt: str
    params: SamplingParams
    sink: Sink
    index: int
    submitted: float
    deadline: float
    writing: WritingParams | None = None
    speller: Speller | None = None
    seq_id: int | None = None  # set when admitted into a batch
    admitted: float | None = None
    first_token: float | None = None
    streaming: bool = False  # its first text has been handed on
    cancelled: bool = False
    timed_out: bool = False
    done: bool = False


class Engine:
    """Loads the models in its thread (so a server can answer /health meanwhile), then serves requests."""

    def __init__(self, load: Callable[[], Sequence[ServedModel]], settings: ServeConfig | None = None,
                 metrics: Metrics | None = None, on_failure: Callable[[BaseException], None] | None = None):
        self.settings = settings or ServeConfig()
        self.metrics = metrics or Metrics()
        self.state = "loading"  # then "ready", or "failed" (see `error`); "stopped" after `stop`
        self.error: BaseException | None = None
        self.models: dict[str, ServedModel] = {}
        self._load = load
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._inbox: list[Ticket] = []  # submitted, not yet taken by the engine thread
        self._cancels: list[Ticket] = []
        self._queued = 0  # submitted and not yet admitted into a batch (the queue the limit applies to)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="rapgpt-engine", daemon=True)
        # Owned by the engine thread:
        self._pending: deque[Ticket] = deque()
        self._decoders: dict[str, LineWriter] = {}
        self._running: dict[str, dict[int, Ticket]] = {}
        self._mean_duration = 0.0  # moving average of a request's running time, for Retry-After
        self._held: list[tuple[Ticket, Message]] = []  # streamed text gathered since the last hand-off
        self._handed_at = 0.0

    def start(self) -> Engine:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: every request still in flight fails with a 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.state = "stopped" if self.state != "failed" else self.state

    def wait_ready(self, timeout: float | None = None) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self.state != "loading", timeout)
        return self.state == "ready"

    def submit(self, prompt: str, params: SamplingParams, model: str, sink: Sink, index: int = 0,
               writing: WritingParams | None = None) -> Ticket:
        """Queue a generation (written line by line if `writing` says so). Raises Unavailable (loading, shutting
        down, queue full), ConfigError for an unknown model or lexicon and TokenizerError for a prompt the model
        cannot read."""
        if self.state != "ready":
            self.metrics.errors.labels("not_ready").inc()
            raise self.unavailable()
        if model not in self.models:
            raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(self.models)}")
        self._decoders[model].encode_prompt(prompt)  # refuse unreadable text now, not in the engine thread
        speller = self.models[model].speller_for(writing or WritingParams())
        now = time.monotonic()
        ticket = Ticket(model, prompt, params, sink, index, now, now + self.settings.time_limit, writing, speller)
        with self._cond:
            if self._stopping:
                raise Unavailable("the server is shutting down", retry_after=30)
            if self._queued >= self.settings.max_queue:
                self.metrics.errors.labels("queue_full").inc()
                raise QueueFull(f"the server is busy: {self._queued} requests are already waiting",
                                retry_after=self.retry_after())
            self._queued += 1
            self.metrics.queue_depth.set(self._queued)
            self._inbox.append(ticket)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request (its client went away); it ends at the next token boundary."""
        with self._cond:
            self._cancels.append(ticket)
            self._cond.notify()

    def retry_after(self) -> int:
        """Seconds until a slot is likely to be free: the queue ahead, in waves of full batches."""
        waves = self._queued / (self.settings.max_batch * max(1, len(self.models))) + 1
        return int(min(60, max(1, math.ceil((self._mean_duration or 1.0) * waves))))

    def unavailable(self) -> Unavailable:
        """Why the engine takes no requests now (it is loading, failed to load, or is stopping)."""
        if self.state == "failed":
            return Unavailable(f"the model failed to load: {self.error}", retry_after=60)
        if self.state == "loading":
            return Unavailable("the model is still loading", retry_after=5)
        return Unavailable("the server is shutting down", retry_after=30)

    # The engine thread.

    def _run(self) -> None:
        try:
            models: dict[str, ServedModel] = {}
            for served in self._load():
                if served.name in models:
                    raise ConfigError(f"two models are named {served.name!r}: give each a distinct name")
                models[served.name] = served
            if not models:
                raise ConfigError("no model to serve")
            self._decoders = {name: self._new_decoder(served) for name, served in models.items()}
            self._running = {name: {} for name in models}
            self.models = models  # other threads see the models once they are all ready
        except BaseException as e:  # noqa: BLE001 - a loading failure of any kind is reported through /health
            log.error("loading the model failed: %s", e)
            with self._cond:
                self.error, self.state = e, "failed"
                self._cond.notify_all()
            if self._on_failure is not None:
                self._on_failure(e)
            return
        with self._cond:
            self.state = "ready"
            self._cond.notify_all()
        log.info("serving %s", ", ".join(self.models))
        while self._next_round():
            self._admit()
            self._step()
        self._shutdown()

    def _new_decoder(self, served: ServedModel) -> LineWriter:
        return LineWriter(BatchDecoder(served.model, served.tokenizer, max_batch=self.settings.max_batch))

    def _busy(self) -> bool:
        return any(d.has_work for d in self._decoders.values())

    def _next_round(self) -> bool:
        """Take new requests and cancellations, waiting while there is nothing to do; False once stopping."""
        with self._cond:
            while not (self._stopping or self._inbox or self._cancels or self._pending or self._busy()):
                self._cond.wait()
            if self._stopping:
                return False
            self._pending.extend(self._inbox)
            cancels, self._inbox, self._cancels = self._cancels, [], []
        for ticket in cancels:
            self._cancel(ticket)
        self._expire(time.monotonic())
        return True

    def _cancel(self, ticket: Ticket) -> None:
        if ticket.done or ticket.cancelled:
            return
        ticket.cancelled = True
        self.metrics.errors.labels("disconnect").inc()
        if ticket.seq_id is None:
            self._pending.remove(ticket)
            ticket.done = True
            self._dequeued()
        else:
            self._decoders[ticket.model].cancel(ticket.seq_id)

    def _expire(self, now: float) -> None:
        for ticket in [t for t in self._pending if t.deadline <= now]:
            self._pending.remove(ticket)
            self._dequeued()
            self.metrics.errors.labels("queue_timeout").inc()
            error = QueueTimeout(f"the server was too busy to start this request within its time limit of "
                                 f"{self.settings.time_limit:g} s", retry_after=self.retry_after())
            self._deliver([(ticket, Failed(ticket.index, error))])
        for model, running in self._running.items():
            for ticket in running.values():
                if ticket.deadline <= now and not ticket.timed_out and not ticket.cancelled:
                    ticket.timed_out = True
                    self._decoders[model].cancel(ticket.seq_id)

    def _dequeued(self) -> None:
        with self._cond:
            self._queued -= 1
            self.metrics.queue_depth.set(self._queued)

    def _admit(self) -> None:
        """Move queued requests, oldest first, into their model's free batch slots."""
        now = time.monotonic()
        for ticket in list(self._pending):
            decoder = self._decoders[ticket.model]
            if decoder.busy_slots >= decoder.max_batch:
                continue
            self._pending.remove(ticket)
            self._dequeued()
            try:
                ticket.seq_id = decoder.add(ticket.prompt, ticket.params, ticket.writing, ticket.speller)
            except RapgptError as e:
                self._deliver([(ticket, Failed(ticket.index, e))])
                continue
            ticket.admitted = now
            self._running[ticket.model][ticket.seq_id] = ticket

    def _step(self) -> None:
        """One token for every running request of every model."""
        out: list[tuple[Ticket, Message]] = []
        urgent = False  # a first text, an end or a failure: sent without waiting for the stream interval
        for name, decoder in self._decoders.items():
            if not decoder.has_work:
                continue
            running = self._running[name]
            try:
                events = decoder.step()
            except Exception as e:  # a bug: fail this model's requests, keep the server up
                log.exception("decoding failed")
                self.metrics.errors.labels("internal").inc(len(running))
                out.extend((t, Failed(t.index, e)) for t in running.values())
                urgent = True
                running.clear()
                self._decoders[name] = self._new_decoder(self.models[name])
                continue
            now = time.monotonic()
            for event in events:
                ticket = running.get(event.seq_id)
                if ticket is None:
                    continue
                if ticket.first_token is None and event.token is not None:
                    ticket.first_token = now
                    self.metrics.ttft.labels(name).observe(now - ticket.submitted)
                if event.text:
                    out.append((ticket, Chunk(ticket.index, event.text)))
                    urgent |= not ticket.streaming
                    ticket.streaming = True
                if event.completion is not None:
                    del running[event.seq_id]
                    out.append((ticket, Finished(ticket.index, self._result(ticket, event.completion, now))))
                    urgent = True
        self.metrics.batch_size.set(sum(len(r) for r in self._running.values()))
        now = time.monotonic()
        self._held += out
        if self._held and (urgent or now - self._handed_at >= self.settings.stream_interval or not self._busy()):
            self._flush(now)

    def _flush(self, now: float) -> None:
        """Hand the gathered messages to the event loops. Each hand-off wakes a loop, whose work takes a core from
        the model's threads (on a small machine, all of them wait for it): gathering a few tokens' text per send
        keeps streaming from slowing decoding."""
        held, self._held, self._handed_at = self._held, [], now
        self._deliver(held)

    def _result(self, ticket: Ticket, completion: Completion, now: float) -> Result:
        ticket.done = True
        reason = completion.finish_reason
        if reason == "cancelled" and ticket.timed_out:
            reason = "time_limit"
            self.metrics.errors.labels("time_limit").inc()
        m = self.metrics
        m.generations.labels(ticket.model, reason).inc()
        m.tokens.labels(ticket.model).inc(completion.completion_tokens)
        m.prompt_tokens.labels(ticket.model).inc(completion.prompt_tokens)
        admitted = ticket.admitted if ticket.admitted is not None else now
        duration = now - admitted
        self._mean_duration = 0.9 * self._mean_duration + 0.1 * duration if self._mean_duration else duration
        first = None if ticket.first_token is None else ticket.first_token - ticket.submitted
        return Result(completion.text, reason, completion.prompt_tokens, completion.completion_tokens,
                      completion.seed, admitted - ticket.submitted, first, now - ticket.submitted)

    def _deliver(self, messages: list[tuple[Ticket, Message]]) -> None:
        """Hand messages to their sinks' event loops: one call per loop, however many requests it serves."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sink, Message]]] = {}
        for ticket, message in messages:
            if isinstance(message, (Finished, Failed)):
                ticket.done = True
            by_loop.setdefault(ticket.sink.loop, []).append((ticket.sink, message))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
                loop.call_soon_threadsafe(_put_all, items)

    def _shutdown(self) -> None:
        self._flush(time.monotonic())  # the text already written goes before the failure
        error = Unavailable("the server is shutting down", retry_after=30)
        tickets = list(self._pending) + [t for r in self._running.values() for t in r.values()]
        with self._cond:
            tickets += self._inbox
            self._inbox = []
        self._deliver([(t, Failed(t.index, error)) for t in tickets if not t.done])
        self._pending.clear()
        for running in self._running.values():
            running.clear()


def _put_all(items: list[tuple[Sink, Message]]) -> None:
    for sink, message in items:
        sink.queue.put_nowait(message)
