"""The server writes to a rhyme scheme and colours rhymes: /api/generate, /v1/completions and /api/rhymes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from serve_support import TOKENIZER, running_engine, tiny_model

from rapgpt.generate import BatchDecoder, SamplingParams, scheme
from rapgpt.generate.params import WritingParams
from rapgpt.generate.scheme import write
from rapgpt.serve.api import create_app
from rapgpt.serve.engine import ServedModel


@pytest.fixture(scope="module")
def model():
    return tiny_model(0)


@pytest.fixture(scope="module")
def client(model):
    # Every line handed on as soon as it is kept (the default gathers what a few milliseconds bring).
    served = ServedModel("tiny", model, TOKENIZER)
    with (running_engine([served], max_batch=4, max_queue=8, stream_interval=0) as engine,
          TestClient(create_app(engine)) as client):
        yield client


def reference(model, prompt: str, params: SamplingParams, writing: WritingParams) -> str:
    (verse,) = write(BatchDecoder(model, TOKENIZER, 4), [prompt], params, writing)
    return verse.text


def test_generate_writes_the_verse_the_package_writes_streaming_whole_lines(client, model):
    body = {"prompt": "yo\n", "max_new_tokens": 10, "seed": 4, "scheme": "AABB", "lines": 3, "candidates": 3}
    expected = reference(model, "yo\n", SamplingParams(max_new_tokens=10, seed=4),
                         WritingParams(scheme="AABB", lines=3, candidates=3))
    answer = client.post("/api/generate", json=body)
    assert answer.status_code == 200 and answer.json()["text"] == expected
    streamed = client.post("/api/generate", json={**body, "stream": True}).text
    pieces = [json.loads(line[6:])["text"] for line in streamed.splitlines()
              if line.startswith("data: ") and '"text"' in line and '"id"' not in line]
    assert "".join(pieces) == expected and len(pieces) == expected.count("\n") >= 3
    assert all(p.endswith("\n") for p in pieces)  # a whole line at a time


def test_the_rhyme_guide_reaches_the_writer_and_is_bounded(client, monkeypatch):
    strengths = []

    class Recording(scheme.RhymeGuide):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            strengths.append(self.strength)

    monkeypatch.setattr(scheme, "RhymeGuide", Recording)
    body = {"prompt": "yo\n", "max_new_tokens": 4, "seed": 4, "scheme": "AABB", "lines": 2, "candidates": 2}
    assert client.post("/api/generate", json={**body, "rhyme_guide": 5.5}).status_code == 200
    assert strengths == [5.5]  # the second line, the one with a partner, was guided as asked
    refused = client.post("/api/generate", json={**body, "rhyme_guide": 21})
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "rhyme_guide"


def test_an_unknown_scheme_is_a_422_naming_the_allowed_ones(client):
    answer = client.post("/api/generate", json={"scheme": "ABBA"})
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "scheme" in message and all(s in message for s in ("free", "AABB", "ABAB", "ABCB", "AAAA"))
    assert client.post("/api/generate", json={"candidates": 0}).status_code == 422


def test_a_lexicon_the_model_lacks_is_a_422_naming_the_way_out(client):
    answer = client.post("/api/generate", json={"lexicon": "corpus", "max_new_tokens": 2})
    assert answer.status_code == 422 and "lexicon" in answer.json()["error"]["message"]


def test_openai_completions_take_the_scheme_as_extra_fields(client, model):
    body = {"model": "tiny", "prompt": "yo\n", "max_tokens": 10, "seed": 4, "temperature": 0.8, "top_p": 0.95}
    expected = reference(model, "yo\n", SamplingParams(max_new_tokens=10, seed=4),
                         WritingParams(scheme="ABAB", lines=2, candidates=2))
    answer = client.post("/v1/completions", json={**body, "scheme": "ABAB", "lines": 2, "candidates": 2})
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == expected
    assert client.post("/v1/completions", json={**body, "scheme": "nope"}).status_code == 422


def test_rhymes_marks_rhyming_line_ends_with_a_shared_group(client):
    text = "I walk at night\nI hold the light\nrain on my shoe\nthe sky is blue\nnothing here"
    marks = client.post("/api/rhymes", json={"text": text}).json()["marks"]
    words = [(text[m["start"] : m["end"]], m["group"]) for m in marks]
    assert words == [("night", 0), ("light", 0), ("shoe", 1), ("blue", 1)]
