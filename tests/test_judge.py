"""The blind test's store and endpoints: excerpts in, anonymous answers kept across restarts and concurrent
writers, the running score, and the evaluation's pool and report."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from scipy.stats import binomtest
from serve_support import TOKENIZER, live_server, running_engine, tiny_model

from rapgpt.errors import ConfigError
from rapgpt.evaluate.judging import judge, pool_name
from rapgpt.evaluate.report import _judge, to_markdown
from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.engine import ServedModel
from rapgpt.serve.judge import REAL, JudgeStore, wilson_interval

REAL_LINES = ["the porch light hums\nthe street is asleep", "my sister laughs\nthe kettle sings along"]
MODEL_LINES = ["the porch of sleep\nhums a kettle light", "a street sings\nmy laugh is a kettle"]


@pytest.fixture
def store(tmp_path) -> JudgeStore:
    store = JudgeStore(tmp_path / "judge.sqlite")
    store.add_excerpts(REAL, REAL_LINES)
    store.add_excerpts("m1", MODEL_LINES)
    return store


@pytest.fixture(scope="module")
def engine():
    with running_engine([ServedModel("tiny", tiny_model(0), TOKENIZER)]) as engine:
        yield engine


@pytest.mark.parametrize("successes,trials", [(0, 10), (8, 10), (37, 50), (1, 1), (500, 1000)])
def test_wilson_interval_matches_scipy(successes, trials):
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_excerpts_are_pooled_once_and_answers_are_tallied_per_source(store):
    assert store.add_excerpts(REAL, [REAL_LINES[0], "  ", "a new real one"]) == 1  # a repeat and a blank are not
    first = store.pick("m1", False)
    assert first.source == "m1" and first.text in MODEL_LINES
    assert store.answer(first.id, judged_real=True).source == "m1"
    assert store.pick("m1", False).id != first.id  # the other one, still unanswered
    real = store.pick(None, True)
    store.answer(real.id, judged_real=True)
    store.answer(real.id, judged_real=False)
    assert store.answer(999, judged_real=True) is None
    tallies = {t.source: t for t in store.tallies()}
    assert (tallies[REAL].excerpts, tallies[REAL].answers, tallies[REAL].judged_real) == (3, 2, 1)
    assert (tallies["m1"].answers, tallies["m1"].share) == (1, 1.0)
    assert store.correct() == (3, 1)  # the model's excerpt taken for real was wrong, one real excerpt was wrong
    assert store.sources() == ["m1"]


def test_answers_survive_a_restart(store):
    excerpt = store.pick(None, True)
    for _ in range(10):
        store.answer(excerpt.id, judged_real=True)
    again = JudgeStore(store.path)  # a new server process opens the same file
    assert again.correct() == (10, 10)
    with sqlite3.connect(store.path) as db:  # committed to the file, not held in a connection
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone() == (10,)


def test_concurrent_writers_lose_no_answer(store):
    ids = [store.pick("m1", False).id, store.pick(None, True).id]

    def answer_many(k: int) -> None:
        own = JudgeStore(store.path)  # as separate processes would: a connection per call
        for i in range(25):
            own.answer(ids[(k + i) % 2], judged_real=bool(i % 2))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(answer_many, range(8)))
    assert store.correct()[0] == 200
    assert sum(t.answers for t in store.tallies()) == 200


def test_a_missing_database_is_an_empty_pool_and_a_directory_is_refused(tmp_path):
    store = JudgeStore(tmp_path / "none.sqlite")
    assert store.pick(None, True) is None and store.tallies() == [] and store.correct() == (0, 0)
    assert not (tmp_path / "none.sqlite").exists()  # reading creates nothing
    with pytest.raises(ConfigError, match="is a directory"):
        JudgeStore(tmp_path)


def test_the_endpoints_hide_the_source_until_the_answer(store, engine):
    with TestClient(create_app(engine, ServeSettings(judge_db=store.path))) as client:
        r = client.get("/api/judge/excerpt", params={"model": "m1"})
        assert r.status_code == 200 and set(r.json()) == {"id", "text"}
        excerpt = r.json()
        verdict = client.post("/api/judge/answers", json={"excerpt": excerpt["id"], "real": True}).json()
        truth = excerpt["text"] in REAL_LINES
        assert verdict["real"] is truth and verdict["correct"] is truth
        assert verdict["model"] == (None if truth else "m1")
        assert verdict["score"]["answers"] == 1 and verdict["score"]["models"] == ["m1"]
        score = client.get("/api/judge/score").json()
        assert [s["source"] for s in score["sources"]] == ["real", "m1"]
        assert client.get("/api/judge/excerpt", params={"model": "m9"}).status_code == 404
        missing = client.post("/api/judge/answers", json={"excerpt": 999, "real": True})
        assert missing.status_code == 404 and "no excerpt 999" in missing.json()["error"]["message"]
        assert client.post("/api/judge/answers", json={"excerpt": 1, "real": "yes"}).status_code == 422
        assert client.post("/api/judge/answers", json={"excerpt": 2**63, "real": True}).status_code == 422


def test_an_empty_pool_says_how_to_fill_it_and_the_key_guards_the_endpoints(tmp_path, engine):
    settings = ServeSettings(judge_db=tmp_path / "j.sqlite", api_key="k")
    with TestClient(create_app(engine, settings)) as client:
        assert client.post("/api/judge/answers", json={"excerpt": 1, "real": True}).status_code == 401
        assert client.get("/api/judge/score").status_code == 401
        r = client.get("/api/judge/excerpt", headers={"Authorization": "Bearer k"})
        assert r.status_code == 404 and "rapgpt eval" in r.json()["error"]["message"]


def test_two_clients_answering_at_once_over_http_lose_nothing(store, engine):
    with live_server(create_app(engine, ServeSettings(judge_db=store.path))) as url:
        start = threading.Barrier(2)

        def client(k: int) -> int:
            answered = 0
            with httpx.Client(base_url=url, timeout=30) as http:
                start.wait()
                for i in range(20):
                    excerpt = http.get("/api/judge/excerpt").json()
                    r = http.post("/api/judge/answers", json={"excerpt": excerpt["id"], "real": (i + k) % 2 == 0})
                    answered += r.status_code == 200
            return answered

        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(client, range(2))) == [20, 20]
        with httpx.Client(base_url=url) as http:
            assert http.get("/api/judge/score").json()["answers"] == 40


def test_eval_pools_its_excerpts_and_reports_the_shares_with_intervals(tmp_path):
    report = {
        "artist": "x", "runs": {"base": "runs/b"},
        "calibration": {"target_heldout": {"texts": ["one\ntwo\nthree\nfour\nfive", "six\nseven"]}},
        "models": {"base": {"samples": [{"chunk": "a\nb\nc\nd\ne"}, {"chunk": "f\ng"}]}},
    }  # fmt: skip
    db = tmp_path / "j.sqlite"
    first = judge(report, db)
    store = JudgeStore(db)
    assert store.sources() == [pool_name("base", "runs/b")] == ["base (runs/b)"]
    texts = {store.pick(None, True).text for _ in range(10)}
    assert "one\ntwo\nthree\nfour" in texts or "six\nseven" in texts  # excerpts are the first four lines
    assert first["sources"][0]["answers"] == 0 and first["sources"][0]["interval"] is None
    for e in range(1, 5):
        for _ in range(5):
            store.answer(e, judged_real=e <= 2 or e == 3)  # real ones always taken for real, half the model's
    again = judge(report, db)
    assert store.tallies()[0].excerpts == 2  # pooling twice adds nothing
    real, base = again["sources"]
    assert (real["answers"], real["share"], base["answers"], base["share"]) == (10, 1.0, 10, 0.5)
    assert base["interval"] == pytest.approx(wilson_interval(5, 10))
    json.dumps(again)  # goes into report.json as it is
    md = to_markdown(_judge({"judge": again}))
    assert _judge({}) == []  # no --judge-db: no section
    assert "| real songs | 2 | 10 | 100% |" in md and "| base (runs/b) (this report) | 2 | 10 | 50% | 24%–76% |" in md



def test_the_new_flags_reach_the_eval_and_serve_settings():
    from rapgpt.cli import build_parser
    from rapgpt.evaluate.config import EvalConfig
    from rapgpt.options import flags_given, resolve
    from rapgpt.serve.config import ServeConfig

    argv = ["eval", "--model", "m", "--data", "d", "--out", "o", "--reference-model", "r", "--judge-db", "j.sqlite"]
    config = resolve(EvalConfig, flags_given(build_parser().parse_args(argv), EvalConfig))
    assert (config.reference_model, config.judge_db) == ("r", "j.sqlite")
    args = build_parser().parse_args(["serve", "--model", "m", "--judge-db", "k.sqlite"])
    assert resolve(ServeConfig, flags_given(args, ServeConfig)).judge_db == "k.sqlite"
