"""The "Real or model?" page in a real browser (Debian's Chromium driven by Playwright): answer ten excerpts, restart
the server, and the ten answers are still counted; two browsers answering at once lose nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_serve_browser as studio_tests
from serve_support import TOKENIZER, live_server, running_engine, tiny_model

from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.engine import ServedModel
from rapgpt.serve.judge import REAL, JudgeStore

browser = studio_tests.browser  # the studio tests' Chromium fixture (that module skips when there is no Chromium)
expect = studio_tests.sync_api.expect

REAL_LINES = [f"the kettle sings at {h} in the morning\nand the radio hums along" for h in range(1, 7)]
MODEL_LINES = [f"the morning {w} a kettle of radio\nhums the along sings" for w in ("eats", "folds", "runs")]


@pytest.fixture(scope="module")
def engine():
    with running_engine([ServedModel("tiny", tiny_model(0), TOKENIZER)]) as engine:
        yield engine


@pytest.fixture
def db(tmp_path) -> Path:
    store = JudgeStore(tmp_path / "judge.sqlite")
    store.add_excerpts(REAL, REAL_LINES)
    store.add_excerpts("base (runs/base)", MODEL_LINES)
    return store.path


def open_judge_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/#judge")
    expect(page.get_by_role("status", name="Server status")).to_have_text("Ready", timeout=30_000)
    return page


def test_ten_answers_are_still_counted_after_a_restart(engine, browser, db, tmp_path):
    with live_server(create_app(engine, ServeSettings(judge_db=db))) as url:
        page = open_judge_page(browser, url)
        excerpt = page.get_by_test_id("excerpt")
        expect(excerpt).to_contain_text("\n", timeout=30_000)
        models = page.get_by_label("Model under test").locator("option")  # filled by the score, fetched on its own
        expect(models).to_have_text(["Any model", "base (runs/base)"], timeout=10_000)
        for i in range(10):
            expect(page.get_by_role("button", name="Real song")).to_be_enabled(timeout=10_000)  # the next is shown
            shown = excerpt.inner_text()
            assert shown in REAL_LINES or shown in MODEL_LINES
            page.get_by_role("button", name="Real song" if i % 2 else "The model").click()
            expect(page.get_by_test_id("my-score")).to_contain_text(f"of {i + 1} right", timeout=10_000)
            truth = "a real song" if shown in REAL_LINES else "the model base (runs/base)"
            expect(page.get_by_role("status", name="Verdict")).to_contain_text(f"that was {truth}")
        expect(page.get_by_test_id("everyone-score")).to_contain_text("of 10 right")
        page.screenshot(path=str(tmp_path / "judge.png"))
        page.close()

    assert JudgeStore(db).correct()[0] == 10
    with live_server(create_app(engine, ServeSettings(judge_db=db))) as url:  # a new server on the same file
        page = open_judge_page(browser, url)
        expect(page.get_by_test_id("everyone-score")).to_contain_text("of 10 right", timeout=30_000)
        expect(page.get_by_test_id("my-score")).to_have_text("no answers yet")  # a new visitor starts at zero
        rows = page.get_by_role("complementary", name="Score").locator("tbody tr")
        assert rows.count() == 2 and "answers" in rows.first.inner_text()
        page.close()


ANSWER_MANY = """async (n) => {
    const one = async (i) => {
        const excerpt = await (await fetch("api/judge/excerpt")).json();
        const r = await fetch("api/judge/answers", {method: "POST", headers: {"Content-Type": "application/json"},
                                                     body: JSON.stringify({excerpt: excerpt.id, real: i % 2 === 0})});
        return r.status;
    };
    window.statuses = Promise.all(Array.from({length: n}, (_, i) => one(i)));
}"""


def test_two_browsers_answering_at_once_lose_nothing(engine, browser, db):
    with live_server(create_app(engine, ServeSettings(judge_db=db))) as url:
        pages = [open_judge_page(browser, url) for _ in range(2)]
        for page in pages:  # both start their 15 answers before either is awaited
            page.evaluate(ANSWER_MANY, 15)
        for page in pages:
            assert page.evaluate("window.statuses") == [200] * 15
        pages[0].reload()
        expect(pages[0].get_by_test_id("everyone-score")).to_contain_text("of 30 right", timeout=30_000)
        for page in pages:
            page.close()
    assert JudgeStore(db).correct()[0] == 30
