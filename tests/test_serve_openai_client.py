"""The server over real HTTP (uvicorn on a free loopback port): OpenAI's own Python client works unchanged, and a
client that goes away stops its generation."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from serve_support import TOKENIZER, live_server, reference, running_engine, tiny_model

from rapgpt.generate import SamplingParams
from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.engine import ServedModel

KEY = "test-key"


@pytest.fixture(scope="module")
def base() -> ServedModel:
    return ServedModel("tiny", tiny_model(0), TOKENIZER)


@pytest.fixture(scope="module")
def server(base):
    with running_engine([base, ServedModel("verses", tiny_model(1), TOKENIZER, "tiny")]) as engine, \
            live_server(create_app(engine, ServeSettings(api_key=KEY))) as url:
        yield engine, url


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[1]}/v1", api_key=KEY, max_retries=0, timeout=60)


def test_openai_client_lists_the_models(client):
    assert [(m.id, m.owned_by) for m in client.models.list()] == [("tiny", "rapgpt"), ("verses", "rapgpt")]


def test_openai_client_completion_is_the_reference_text(client, base):
    c = client.completions.create(model="tiny", prompt="city ", max_tokens=12, temperature=0.8, seed=3,
                                  extra_body={"top_k": 9})
    expected = reference(base.model, "city ", SamplingParams(max_new_tokens=12, temperature=0.8, top_p=1.0, top_k=9,
                                                             seed=3))
    assert c.choices[0].text == expected.text and c.choices[0].finish_reason == "length"
    assert c.usage.completion_tokens == 12 and c.usage.prompt_tokens == 6


def test_openai_client_streaming_adds_up_to_the_same_text(client, base):
    stream = client.completions.create(model="tiny", prompt="city ", max_tokens=12, temperature=0.8, seed=3,
                                       stream=True, stream_options={"include_usage": True})
    pieces, reasons, usage = [], [], None
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.text)
            reasons.append(choice.finish_reason)
        usage = chunk.usage or usage
    expected = reference(base.model, "city ", SamplingParams(max_new_tokens=12, temperature=0.8, top_p=1.0, seed=3))
    assert "".join(pieces) == expected.text
    assert [r for r in reasons if r] == ["length"] and usage.completion_tokens == 12


def test_openai_client_raises_the_servers_errors(client, server):
    with pytest.raises(openai.UnprocessableEntityError, match="temperature"):
        client.completions.create(model="tiny", prompt="a", temperature=5)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="a")
    wrong_key = openai.OpenAI(base_url=f"{server[1]}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        wrong_key.models.list()


def _cancelled(engine) -> float:
    return engine.metrics.generations.labels("tiny", "cancelled")._value.get()


def _wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_closing_a_stream_cancels_its_generation(server):
    engine, url = server
    before = _cancelled(engine)
    body = {"prompt": "", "max_new_tokens": 2048, "stream": True}
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http, \
            http.stream("POST", f"{url}/api/generate", json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines) == "event: text"
    assert _wait_for(lambda: _cancelled(engine) == before + 1), "the generation went on after the client left"
    assert _wait_for(lambda: engine.metrics.batch_size._value.get() == 0)


def test_a_client_that_stops_waiting_for_a_whole_answer_cancels_it(server):
    engine, url = server
    before = _cancelled(engine)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/api/generate", json={"prompt": "", "max_new_tokens": 2048},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=httpx.Timeout(30, read=0.5))
    assert _wait_for(lambda: _cancelled(engine) == before + 1), "the generation went on after the client left"
