"""The HTTP API through httpx (FastAPI's TestClient): every endpoint, every validation error, auth, CORS, errors
that must not be 500s, metrics and the front end."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from serve_support import TOKENIZER, reference, running_engine, tiny_model

from rapgpt.generate import SamplingParams
from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.config import RequestLimits
from rapgpt.serve.engine import QueueFull, ServedModel
from rapgpt.serve.schemas import MAX_PROMPT_CHARS, GenerateRequest


@pytest.fixture(scope="module")
def models() -> list[ServedModel]:
    return [ServedModel("tiny", tiny_model(0), TOKENIZER), ServedModel("verses", tiny_model(1), TOKENIZER, "tiny")]


@pytest.fixture(scope="module")
def engine(models):
    with running_engine(models, max_batch=4, max_queue=8) as engine:
        yield engine


@pytest.fixture(scope="module")
def client(engine) -> TestClient:
    with TestClient(create_app(engine)) as client:
        yield client


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events body."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event", "message"), fields["data"]))
    return events


def test_health_is_ok_when_the_model_is_ready(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "models": ["tiny", "verses"], "error": None}


def test_health_and_requests_answer_503_while_the_model_loads(models):
    loaded = threading.Event()
    with running_engine(lambda: loaded.wait(30) and models, wait=False) as engine, \
            TestClient(create_app(engine)) as client:
        health = client.get("/health")
        generate = client.post("/api/generate", json={"prompt": "a"})
        listing = client.get("/v1/models")
        loaded.set()
        assert engine.wait_ready(30)
        assert client.get("/health").status_code == 200
    assert health.status_code == 503 and health.json()["status"] == "loading"
    assert health.headers["Retry-After"] == "5"
    for r in (generate, listing):
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert "loading" in r.json()["error"]["message"]


def test_health_reports_a_failed_load(models):
    def broken():
        raise RuntimeError("weights are corrupt")

    with running_engine(broken, wait=False) as engine, TestClient(create_app(engine)) as client:
        engine.wait_ready(30)
        r = client.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "failed" and "corrupt" in r.json()["error"]


def test_models_lists_the_base_model_and_its_adapters(client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [(m["id"], m["parent"], m["object"]) for m in body["data"]] == [("tiny", None, "model"),
                                                                         ("verses", "tiny", "model")]
    assert all(m["context_length"] == 64 and m["tokenizer"] == "char" for m in body["data"])


def test_generate_returns_what_the_generation_package_writes(client, models):
    r = client.post("/api/generate", json={"prompt": "city ", "max_new_tokens": 20, "temperature": 0.9,
                                           "top_k": 12, "seed": 5})
    assert r.status_code == 200
    body = r.json()
    expected = reference(models[0].model, "city ", SamplingParams(max_new_tokens=20, temperature=0.9, top_k=12, seed=5))
    assert body["text"] == expected.text and body["finish_reason"] == "length" == expected.finish_reason
    assert body["model"] == "tiny" and body["adapter"] is None and body["seed"] == 5
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 20, "total_tokens": 26}
    t = body["timings"]
    assert 0 <= t["queued"] <= t["first_token"] <= t["total"] and t["tokens_per_second"] > 0


def test_generate_with_an_adapter_uses_its_weights(client, models):
    r = client.post("/api/generate", json={"prompt": "city ", "max_new_tokens": 20, "seed": 5, "adapter": "verses",
                                           "temperature": 1})  # a JSON integer is a valid number
    assert r.status_code == 200
    expected = reference(models[1].model, "city ", SamplingParams(max_new_tokens=20, seed=5, temperature=1.0))
    assert r.json()["text"] == expected.text
    assert r.json()["model"] == "verses" and r.json()["adapter"] == "verses"


def test_generate_stream_sends_pieces_that_add_up_to_the_final_answer(client, models):
    with client.stream("POST", "/api/generate", json={"prompt": "", "max_new_tokens": 30, "seed": 2,
                                                      "stop": ["q"], "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    *pieces, (last, done) = events
    assert {name for name, _ in pieces} == {"text"} and last == "done"
    done = json.loads(done)
    expected = reference(models[0].model, "", SamplingParams(max_new_tokens=30, seed=2, stop=("q",)))
    assert "".join(json.loads(data)["text"] for _, data in pieces) == done["text"] == expected.text
    assert done["finish_reason"] == expected.finish_reason


@pytest.mark.parametrize(("field", "value"), [
    ("prompt", "a" * (MAX_PROMPT_CHARS + 1)), ("prompt", 5), ("prompt", None),
    ("max_new_tokens", 0), ("max_new_tokens", 2049), ("max_new_tokens", 1.5), ("max_new_tokens", "many"),
    ("temperature", -0.1), ("temperature", 2.01), ("temperature", 1e-300), ("top_k", 0), ("top_k", 10**6),
    ("top_p", 0), ("top_p", 1e-300), ("top_p", 1.01), ("min_p", -0.01), ("min_p", 1.01),
    ("repetition_penalty", 0.1), ("repetition_penalty", 2.5), ("frequency_penalty", -2.01),
    ("presence_penalty", 2.01), ("stop", ["a"] * 5), ("stop", [""]), ("stop", ["x" * 65]), ("stop", "\n"),
    ("seed", -1), ("seed", 2**63), ("adapter", "nope"), ("adapter", "../../etc/passwd"), ("adapter", "tiny"),
    ("stream", "maybe"), ("temprature", 0.5),
])
def test_generate_refuses_each_invalid_field_with_a_422_naming_it(client, field, value):
    r = client.post("/api/generate", json={"prompt": "a", field: value})
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["param"] == field
    assert body["error"]["message"].startswith(field)
    assert body["detail"][0]["loc"][:2] == ["body", field]


def test_limits_are_published_and_are_the_bounds_the_api_enforces(client):
    limits = client.get("/api/limits").json()
    assert limits == asdict(RequestLimits())
    at_limit = {"prompt": "a" * limits["prompt_chars"], "max_new_tokens": limits["max_new_tokens"],
                "temperature": limits["max_temperature"], "stop": ["x"] * limits["stop_strings"]}
    GenerateRequest.model_validate(at_limit)  # accepted
    beyond_limit = {"prompt": at_limit["prompt"] + "a", "max_new_tokens": limits["max_new_tokens"] + 1,
                    "temperature": limits["max_temperature"] + 0.01, "stop": [*at_limit["stop"], "x"]}
    for field, beyond in beyond_limit.items():
        r = client.post("/api/generate", json={**at_limit, field: beyond})
        assert r.status_code == 422 and r.json()["error"]["param"] == field


def test_a_prompt_the_model_cannot_read_is_a_422_naming_the_characters(client):
    r = client.post("/api/generate", json={"prompt": "Hey ñ"})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "prompt" and "'H'" in r.json()["error"]["message"]


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"a"', b"", b'{"prompt": "\\ud800"}', b'{"prompt": "a", "temperature": NaN}',
    b'{"prompt": "a", "max_new_tokens": 1e400}', b"\xff\xfe",
])
def test_malformed_bodies_are_422_never_500(client, body):
    r = client.post("/api/generate", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_completions_match_the_reference_for_each_prompt_and_sample(client, models):
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": ["ab", "cd"], "n": 2, "max_tokens": 8,
                                             "seed": 10, "temperature": 0.7, "stop": "zz"})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "tiny" and body["id"].startswith("cmpl-")
    for i, (prompt, seed) in enumerate([("ab", 10), ("ab", 11), ("cd", 12), ("cd", 13)]):
        expected = reference(models[0].model, prompt, SamplingParams(max_new_tokens=8, seed=seed, temperature=0.7,
                                                                     top_p=1.0, stop=("zz",)))
        choice = body["choices"][i]
        assert choice["index"] == i and choice["text"] == expected.text and choice["logprobs"] is None
        assert choice["finish_reason"] == ("length" if expected.finish_reason == "length" else "stop")
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 32, "total_tokens": 38}


def test_completions_echo_puts_the_prompt_first(client):
    r = client.post("/v1/completions", json={"model": "verses", "prompt": "yo ", "max_tokens": 4, "echo": True})
    assert r.status_code == 200 and r.json()["choices"][0]["text"].startswith("yo ")
    assert len(r.json()["choices"][0]["text"]) == 7


def test_completions_stream_sends_openai_chunks_then_usage_and_done(client):
    request = {"model": "tiny", "prompt": "a", "max_tokens": 6, "n": 2, "seed": 1, "stream": True,
               "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/completions", json=request) as r:
        assert r.status_code == 200
        events = sse_events(r.read().decode())
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    *choices, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 12
    texts = {0: "", 1: ""}
    for c in choices:
        assert c["object"] == "text_completion" and c["id"] == chunks[0]["id"]
        (choice,) = c["choices"]
        texts[choice["index"]] += choice["text"]
    assert [c["choices"][0]["finish_reason"] for c in choices if c["choices"][0]["finish_reason"]] == ["length"] * 2
    plain = client.post("/v1/completions", json={**request, "stream": False}).json()
    assert [texts[0], texts[1]] == [c["text"] for c in plain["choices"]]


def test_completions_for_an_unknown_model_is_a_404_naming_the_models(client):
    r = client.post("/v1/completions", json={"model": "gpt-4", "prompt": "a"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found" and "tiny" in r.json()["error"]["message"]


@pytest.mark.parametrize(("field", "value"), [
    ("model", ""), ("prompt", [1, 2, 3]), ("prompt", ["a"] * 9), ("prompt", []), ("max_tokens", 0),
    ("max_tokens", 5000), ("temperature", 3), ("temperature", 0.005), ("top_p", 0), ("top_p", 1e-9), ("n", 0),
    ("n", 9), ("stop", ["a"] * 5), ("stop", ""),
    ("seed", -1), ("presence_penalty", 3), ("frequency_penalty", -3), ("best_of", 2), ("logprobs", 1),
    ("logit_bias", {"1": 2}), ("suffix", "x"), ("top_k", 0), ("min_p", 2), ("repetition_penalty", 5),
    ("stream", "sometimes"),
])
def test_completions_refuse_each_invalid_field_with_a_422_naming_it(client, field, value):
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": "a", field: value})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == field


def test_completions_refuse_too_many_choices_over_all_prompts(client):
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": ["a", "b", "c"], "n": 3})
    assert r.status_code == 422 and r.json()["error"]["param"] == "n"


def test_a_full_queue_answers_429_with_retry_after(client, engine, monkeypatch):
    def full(*args, **kwargs):
        raise QueueFull("the server is busy: 8 requests are already waiting", retry_after=7)

    monkeypatch.setattr(engine, "submit", full)
    for path, body in (("/api/generate", {"prompt": "a"}), ("/v1/completions", {"model": "tiny", "prompt": "a"})):
        r = client.post(path, json=body)
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.json()["error"]["code"] == "queue_full" and "busy" in r.json()["error"]["message"]


def test_the_time_limit_ends_a_generation_with_its_text_so_far(models):
    with running_engine(models, time_limit=0.3) as engine, TestClient(create_app(engine)) as client:
        r = client.post("/api/generate", json={"prompt": "", "max_new_tokens": 2048, "seed": 0})
    assert r.status_code == 200
    assert r.json()["finish_reason"] == "time_limit" and 0 < r.json()["usage"]["completion_tokens"] < 2048


def test_an_api_key_guards_the_api_but_not_health_or_the_front_end(engine):
    with TestClient(create_app(engine, ServeSettings(api_key="s3cret"))) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/api/limits").status_code == 200  # the studio reads them before it asks for the key
        assert client.get("/").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/api/generate"), ("POST", "/v1/completions"),
                                 ("GET", "/metrics")):
                r = client.request(method, path, headers=headers, json={"model": "tiny", "prompt": "a"})
                assert r.status_code == 401, (path, headers)
                assert r.headers["WWW-Authenticate"] == "Bearer" and r.json()["error"]["code"] == "invalid_api_key"
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/models", headers=good).status_code == 200
        assert client.post("/api/generate", headers=good, json={"max_new_tokens": 2}).status_code == 200
        assert client.get("/metrics", headers=good).status_code == 200


def test_cors_answers_only_the_configured_origins(engine):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with TestClient(create_app(engine, ServeSettings(cors_origins=("https://studio.example",)))) as client:
        allowed = client.options("/api/generate", headers={"Origin": "https://studio.example", **preflight})
        other = client.options("/api/generate", headers={"Origin": "https://evil.example", **preflight})
        simple = client.get("/v1/models", headers={"Origin": "https://studio.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://studio.example"
    assert "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == "https://studio.example"
    with TestClient(create_app(engine)) as client:
        r = client.get("/v1/models", headers={"Origin": "https://studio.example"})
    assert "access-control-allow-origin" not in r.headers


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_tokens_errors_and_latencies(models):
    with running_engine(models) as engine, TestClient(create_app(engine)) as client:
        answers = [client.post("/api/generate", json={"prompt": "ab", "max_new_tokens": n}).json() for n in (3, 5)]
        client.post("/api/generate", json={"temperature": 9})
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = _samples(r.text)
    assert m[("rapgpt_generated_tokens_total", (("model", "tiny"),))] == 8 == sum(
        a["usage"]["completion_tokens"] for a in answers)
    assert m[("rapgpt_prompt_tokens_total", (("model", "tiny"),))] == 6
    assert m[("rapgpt_http_requests_total", (("path", "/api/generate"), ("status", "200")))] == 2
    assert m[("rapgpt_http_requests_total", (("path", "/api/generate"), ("status", "422")))] == 1
    assert m[("rapgpt_errors_total", (("kind", "validation"),))] == 1
    assert m[("rapgpt_time_to_first_token_seconds_count", (("model", "tiny"),))] == 2
    assert m[("rapgpt_http_request_duration_seconds_count", (("path", "/api/generate"),))] == 3
    assert m[("rapgpt_generations_total", (("finish_reason", "length"), ("model", "tiny")))] == 2
    assert m[("rapgpt_queue_depth", ())] == 0 and m[("rapgpt_batch_size", ())] == 0


def test_the_front_end_and_its_assets_are_served_at_the_root(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<div id="root">' in r.text
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert client.get(f"/{asset}").status_code == 200
    for sneaky in ("/%2e%2e/api.py", "/assets/%2e%2e/%2e%2e/api.py", "/assets/..%2F..%2Fapi.py"):
        assert client.get(sneaky).status_code == 404  # nothing outside the front end's own folder


def test_the_api_docs_load_swagger_ui_from_the_server_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(loaded) == ["/swagger-ui/favicon-32x32.png", "/swagger-ui/swagger-ui-bundle.js",
                              "/swagger-ui/swagger-ui.css"]
    for url in loaded:
        assert client.get(url).status_code == 200
    assert "url: '/openapi.json'" in page.text and '"validatorUrl": null' in page.text
    redoc = client.get("/redoc", follow_redirects=False)
    assert redoc.status_code == 307 and redoc.headers["location"] == "/docs"


def test_a_server_without_swagger_ui_has_no_docs_page_and_says_why(engine, tmp_path, caplog):
    with caplog.at_level("WARNING"), TestClient(create_app(engine, ServeSettings(static_dir=tmp_path))) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 200
    assert "npm run build" in caplog.text and "/docs" in caplog.text
