"""The HTTP API: rapgpt's own `/api/generate`, OpenAI's `/v1/completions` and `/v1/models`, `/health`, `/metrics`,
and the browser front end at `/`.

Generation never runs on the event loop: handlers submit requests to the `Engine` and await its messages. A
client that goes away cancels its generation. Every error is JSON with OpenAI's `error` object (so OpenAI's
clients show the message) and FastAPI's `detail`; no request body, however malformed, gets a 500. No endpoint
takes a file path: models are chosen by the names the server was started with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from rapgpt import __version__
from rapgpt.errors import ConfigError, TokenizerError
from rapgpt.generate import SamplingParams
from rapgpt.generate.params import WritingParams
from rapgpt.serve.config import LIMITS, ServeConfig
from rapgpt.serve.docs import DOCS_PATH, SWAGGER_DIR, add_docs
from rapgpt.serve.engine import Chunk, Engine, Failed, Finished, Result, Sink, Ticket, Unavailable
from rapgpt.serve.metrics import CONTENT_TYPE, Metrics
from rapgpt.serve.schemas import (
    MAX_CHOICES,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    Health,
    ModelCard,
    ModelList,
    RhymeMarkOut,
    RhymesRequest,
    RhymesResponse,
    Timings,
    Usage,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Paths counted in the metrics under their own name; anything else is "static" or "other", so that a scan of
# random URLs cannot grow the number of time series.
METRIC_PATHS = ("/api/generate", "/v1/completions", "/v1/models", "/health", "/metrics", DOCS_PATH, "/openapi.json",
                "/api/judge/excerpt", "/api/judge/answers", "/api/judge/score")
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in [
        (400, "the body cannot be read (it is not UTF-8 text)"),
        (401, "missing or wrong API key"),
        (422, "a field is invalid; `error.param` names it"),
        (429, "the queue is full: retry after the Retry-After header's seconds"),
        (503, "the model is loading or the server is too busy: retry after Retry-After"),
    ]
}


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = ServeConfig.api_key  # when set, /api, /v1 and /metrics require "Bearer <key>"
    cors_origins: tuple[str, ...] = ServeConfig.cors_origins  # origins allowed to call the API from a browser
    static_dir: Path | None = STATIC_DIR  # the built front end; None serves no front end
    disconnect_poll: float = 0.5  # seconds between checks that a client awaiting a whole answer is still there
    judge_db: Path | None = None  # the blind test's SQLite store; None serves no /api/judge


class ApiError(Exception):
    """An error answer: OpenAI's error object plus FastAPI's `detail`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, detail: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers
        self.detail = detail

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return {"error": error, "detail": self.detail if self.detail is not None else self.message}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid(param: str, message: str) -> ApiError:
    """A 422 naming a body field, in the shape of FastAPI's own validation errors."""
    detail = [{"loc": ["body", param], "msg": message, "type": "value_error"}]
    return ApiError(422, f"{param}: {message}", param=param, detail=detail)


def engine_error(error: BaseException) -> ApiError:
    """The answer for an error that a generation ended with."""
    if isinstance(error, Unavailable):
        return ApiError(error.status, str(error), code=error.kind, headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, TokenizerError):
        return invalid("prompt", str(error))
    log.error("generation failed: %r", error)
    return ApiError(500, "generation failed on the server; see its log", code="internal")


def create_app(engine: Engine, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving `engine`. The caller starts and stops the engine."""
    settings = settings or ServeSettings()
    metrics = engine.metrics
    created = int(time.time())
    app = FastAPI(title="rapgpt", version=__version__, docs_url=None, redoc_url=None,
                  description="Write lyrics with a rapgpt model. `/v1` follows OpenAI's completions API.")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        if e.status in (401, 422):
            metrics.errors.labels("auth" if e.status == 401 else "validation").inc()
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        # Only loc, msg and type: echoing the input back could repeat a whole prompt, or text that is not UTF-8.
        detail = [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
                  for err in e.errors()]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        field = [str(part) for part in first["loc"] if part != "body"]
        param = field[0] if field else None
        message = f"{'.'.join(field) or 'body'}: {first['msg']}"
        metrics.errors.labels("validation").inc()
        return ApiError(422, message, param=param, detail=detail).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return ApiError(e.status_code, str(e.detail), headers=e.headers).response()

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error in %s", request.url.path)
        return ApiError(500, "internal server error; see the server's log", code="internal").response()

    protected = [Depends(_bearer_check(settings.api_key))] if settings.api_key else []

    def base_model() -> str:
        return next(name for name, m in engine.models.items() if m.parent is None)

    def ready() -> None:
        if engine.state != "ready":
            raise engine_error(engine.unavailable())

    def submit(prompt: str, params: SamplingParams, model: str, sink: Sink, index: int,
               writing: WritingParams) -> Ticket:
        try:
            return engine.submit(prompt, params, model, sink, index, writing)
        except TokenizerError as e:
            raise invalid("prompt", str(e)) from e
        except ConfigError as e:  # a lexicon the model lacks (the model itself was checked before)
            raise invalid("lexicon", str(e)) from e
        except Unavailable as e:
            raise engine_error(e) from e

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["server"])
    async def health() -> JSONResponse:
        """200 once the models are loaded and the server takes requests; 503 while loading or after a failure."""
        status = {"ready": "ok"}.get(engine.state, engine.state)
        body = Health(status=status, models=list(engine.models), error=str(engine.error) if engine.error else None)
        if status == "ok":
            return JSONResponse(body.model_dump())
        headers = {"Retry-After": "5"} if status == "loading" else None
        return JSONResponse(body.model_dump(), status_code=503, headers=headers)

    @app.get("/metrics", dependencies=protected, tags=["server"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    async def prometheus_metrics() -> Response:
        """Requests, errors, latency and time-to-first-token histograms, tokens generated, queue depth."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/api/limits", tags=["rapgpt"])
    async def limits() -> dict[str, int | float]:
        """The bounds of a request's fields (prompt length, token budget, sampling settings), which the studio's
        controls follow."""
        return asdict(LIMITS)

    @app.get("/v1/models", response_model=ModelList, dependencies=protected, responses=ERROR_RESPONSES,
             tags=["openai"])
    async def models() -> ModelList:
        """The base model and the fine-tuned (adapter) models this server was started with."""
        ready()
        cards = [ModelCard(id=name, created=created, parent=m.parent, context_length=m.context_length,
                           tokenizer=m.tokenizer.kind) for name, m in engine.models.items()]
        return ModelList(data=cards)

    @app.post("/api/generate", response_model=GenerateResponse, dependencies=protected, tags=["rapgpt"],
              responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}})
    async def generate(body: GenerateRequest, request: Request) -> Any:
        """Continue a prompt. With `stream`, Server-Sent Events: `text` events ({"text": piece}) as the lyrics
        are written, then one `done` event holding this endpoint's JSON answer, or an `error` event."""
        ready()
        if body.adapter is None:
            model = base_model()
        elif body.adapter in engine.models and engine.models[body.adapter].parent is not None:
            model = body.adapter
        else:
            adapters = [n for n, m in engine.models.items() if m.parent is not None]
            raise invalid("adapter", f"no adapter named {body.adapter!r}; this server has "
                                     f"{', '.join(map(repr, adapters)) or 'none'} (null for the base model)")
        params = _sampling(body.sampling)
        sink = Sink()
        ticket = submit(body.prompt, params, model, sink, 0, body.writing())
        gen_id = f"gen-{uuid.uuid4().hex[:24]}"

        def answer(result: Result) -> GenerateResponse:
            generating = max(result.total - result.queued, 1e-9)
            return GenerateResponse(
                id=gen_id, model=model, adapter=body.adapter, text=result.text, finish_reason=result.finish_reason,
                seed=result.seed, usage=_usage([result], [result]),
                timings=Timings(queued=result.queued, first_token=result.first_token, total=result.total,
                                tokens_per_second=result.completion_tokens / generating))

        if not body.stream:
            (result,) = await _collect(request, engine, [ticket], sink, settings.disconnect_poll)
            return answer(result)

        async def events() -> AsyncIterator[str]:
            finished = False
            try:
                while not finished:
                    out = []
                    for message in await sink.get_many():
                        if isinstance(message, Chunk):
                            out.append(_sse({"text": message.text}, "text"))
                        elif isinstance(message, Finished):
                            finished = True
                            out.append(_sse(answer(message.result).model_dump(), "done"))
                        else:
                            finished = True
                            out.append(_sse(engine_error(message.error).body(), "error"))
                    yield "".join(out)
            finally:
                if not finished:
                    engine.cancel(ticket)

        return _event_stream(events())

    @app.post("/api/rhymes", response_model=RhymesResponse, dependencies=protected, tags=["rapgpt"],
              responses=ERROR_RESPONSES)
    async def rhymes(body: RhymesRequest) -> RhymesResponse:
        """The line ends of a text that rhyme with a line end near them, grouped by rhyme, for colouring."""
        from rapgpt.rhyme import end_rhyme_marks

        marks = await asyncio.to_thread(end_rhyme_marks, body.text)
        return RhymesResponse(marks=[RhymeMarkOut(start=m.start, end=m.end, group=m.group) for m in marks])

    @app.post("/v1/completions", response_model=CompletionResponse, dependencies=protected, tags=["openai"],
              responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": "unknown model"},
                         200: {"content": {"text/event-stream": {}}}})
    async def completions(body: CompletionRequest, request: Request) -> Any:
        """OpenAI's completions API: `model` from /v1/models, one prompt or several, `n` samples of each."""
        ready()
        if body.model not in engine.models:
            raise ApiError(404, f"the model {body.model!r} does not exist; choose one of {', '.join(engine.models)}",
                           param="model", code="model_not_found")
        prompts, n = body.prompts(), body.n or 1
        if len(prompts) * n > MAX_CHOICES:
            raise invalid("n", f"{len(prompts)} prompt(s) x n={n} asks for more than {MAX_CHOICES} completions")
        params = _sampling(body.sampling)
        choices = [(prompt, _nth_seed(params, i * n + j)) for i, prompt in enumerate(prompts) for j in range(n)]
        sink = Sink()
        tickets: list[Ticket] = []
        try:
            for index, (prompt, p) in enumerate(choices):
                tickets.append(submit(prompt, p, body.model, sink, index, body.writing()))
        except ApiError:
            for ticket in tickets:
                engine.cancel(ticket)
            raise
        cmpl_id, now = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        echo = [prompt if body.echo else "" for prompt, _ in choices]
        firsts = list(range(0, len(choices), n))  # one choice per prompt, whose prompt tokens count in the usage

        if not body.stream:
            results = await _collect(request, engine, tickets, sink, settings.disconnect_poll)
            return CompletionResponse(
                id=cmpl_id, created=now, model=body.model, usage=_usage(results, [results[i] for i in firsts]),
                choices=[CompletionChoice(text=echo[i] + r.text, index=i, finish_reason=_openai_reason(r))
                         for i, r in enumerate(results)])

        def chunk(choices: list[dict[str, Any]], usage: Usage | None = None) -> str:
            body_ = {"id": cmpl_id, "object": "text_completion", "created": now, "model": body.model,
                     "choices": choices}
            if usage is not None:
                body_["usage"] = usage.model_dump()
            return _sse(body_)

        def choice(index: int, text: str, reason: str | None = None) -> dict[str, Any]:
            return {"text": text, "index": index, "logprobs": None, "finish_reason": reason}

        async def events() -> AsyncIterator[str]:
            results: dict[int, Result] = {}
            try:
                for i, text in enumerate(echo):
                    if text:
                        yield chunk([choice(i, text)])
                failed = False
                while len(results) < len(tickets) and not failed:
                    out = []
                    for message in await sink.get_many():
                        if isinstance(message, Chunk):
                            out.append(chunk([choice(message.index, message.text)]))
                        elif isinstance(message, Finished):
                            results[message.index] = message.result
                            out.append(chunk([choice(message.index, "", _openai_reason(message.result))]))
                        else:
                            out.append(_sse(engine_error(message.error).body()))
                            failed = True
                            break
                    yield "".join(out)
                if not failed and body.stream_options is not None and body.stream_options.include_usage:
                    ordered = [results[i] for i in range(len(tickets))]
                    yield chunk([], _usage(ordered, [ordered[i] for i in firsts]))
                yield "data: [DONE]\n\n"
            finally:
                for i, ticket in enumerate(tickets):
                    if i not in results:
                        engine.cancel(ticket)

        return _event_stream(events())

    if settings.judge_db is not None:
        from rapgpt.serve.judge import JudgeStore
        from rapgpt.serve.judge_api import judge_router

        app.include_router(judge_router(JudgeStore(settings.judge_db), protected))

    add_docs(app, settings.static_dir)
    if settings.static_dir is not None and (settings.static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=settings.static_dir, html=True), name="front end")
    else:
        log.warning("no built front end in %s: run `npm run build` in web/ to serve one at /", settings.static_dir)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Retry-After"])
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


_bearer = HTTPBearer(auto_error=False, description="the key given to `rapgpt serve --api-key`")


def _bearer_check(api_key: str):
    expected = api_key.encode()

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    return check


def _sampling(make) -> SamplingParams:
    """SamplingParams from a validated body; its own checks, should they be stricter, still answer 422."""
    try:
        return make()
    except ConfigError as e:
        raise invalid(str(e).split(" ", 1)[0], str(e)) from e


def _nth_seed(params: SamplingParams, i: int) -> SamplingParams:
    """Sample i of a seeded request uses seed + i: the samples differ, and each is reproducible."""
    return params if params.seed is None else replace(params, seed=(params.seed + i) % 2**63)


def _openai_reason(result: Result) -> str:
    return "stop" if result.finish_reason in ("stop", "eot") else "length"


def _usage(results: Sequence[Result], prompts: Sequence[Result]) -> Usage:
    prompt = sum(r.prompt_tokens for r in prompts)
    completion = sum(r.completion_tokens for r in results)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


async def _collect(request: Request, engine: Engine, tickets: list[Ticket], sink: Sink, poll: float) -> list[Result]:
    """Await every ticket's result, cancelling them all if the client goes away or one fails."""
    results: dict[int, Result] = {}
    checked = time.monotonic()
    try:
        while len(results) < len(tickets):
            try:
                message = await asyncio.wait_for(sink.get(), poll)
            except TimeoutError:
                message = None
            if time.monotonic() - checked >= poll:  # pieces may arrive faster than `poll`: check by the clock
                checked = time.monotonic()
                if await request.is_disconnected():
                    raise ApiError(499, "the client closed the connection", code="disconnect")
            if isinstance(message, Failed):
                raise engine_error(message.error)
            if isinstance(message, Finished):
                results[message.index] = message.result
        return [results[i] for i in range(len(tickets))]
    finally:
        for i, ticket in enumerate(tickets):
            if i not in results:
                engine.cancel(ticket)


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and X-Accel-Buffering keep proxies from holding the pieces back.
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _metric_path(path: str) -> str:
    if path in METRIC_PATHS:
        return path
    if path == "/" or path.startswith(("/assets/", f"/{SWAGGER_DIR}/")) or path == "/index.html":
        return "static"
    return "other"


class _MetricsMiddleware:
    """Counts every HTTP answer by path and status, and times it to its last byte (streams included)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = _metric_path(scope["path"])
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
            if status >= 500:
                self.metrics.errors.labels("internal").inc()
