"""Property-based tests of the whole HTTP API from its OpenAPI schema (schemathesis): generated requests, valid and
invalid, never get a 5xx, and every answer matches the schema that /docs publishes."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from serve_support import TOKENIZER, running_engine, tiny_model

from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.engine import ServedModel
from rapgpt.serve.judge import REAL, JudgeStore

EXAMPLES = 25  # per operation and mode: enough to reach the bounds of every field, few enough to run in seconds


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    judge = JudgeStore(tmp_path_factory.mktemp("judge") / "judge.sqlite")  # the blind test's endpoints too
    judge.add_excerpts(REAL, ["a real line\nand another"])
    judge.add_excerpts("m", ["a model line\nand more"])
    models = [ServedModel("tiny", tiny_model(0), TOKENIZER), ServedModel("verses", tiny_model(1), TOKENIZER, "tiny")]
    # A short time limit bounds the generations, whatever budget and number of choices a case asks for.
    with running_engine(models, max_batch=8, max_queue=64, time_limit=0.2) as engine:
        app = create_app(engine, ServeSettings(judge_db=judge.path))
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations() -> list[str]:
    return ["GET /health", "GET /metrics", "GET /api/limits", "GET /v1/models", "POST /api/generate",
            "POST /v1/completions", "GET /api/judge/excerpt", "POST /api/judge/answers", "GET /api/judge/score"]


def test_the_schema_lists_every_endpoint(api_schema):
    listed = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations())
    assert listed == sorted(operations())


# Invalid requests can only be made for operations that take input: the POSTs.
CASES = [(op, GenerationMode.POSITIVE) for op in operations()] + [
    (op, GenerationMode.NEGATIVE) for op in operations() if op.startswith("POST")]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_generated_requests_never_get_a_server_error_and_match_the_schema(api_schema, operation, mode):
    method, path = operation.split(" ")
    op = api_schema[path][method]

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        # Schema-valid input may still be refused with a 422: a prompt with characters outside the model's
        # vocabulary, an adapter name the server was not started with. Every other check applies.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
