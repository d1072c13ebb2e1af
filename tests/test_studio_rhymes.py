"""The studio's rhyme-scheme controls and rhyme colours in a real browser (Debian's Chromium via Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import TOKENIZER, live_server, running_engine, tiny_model

from rapgpt.serve.api import create_app
from rapgpt.serve.engine import ServedModel

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def page():
    with (running_engine([ServedModel("tiny", tiny_model(0), TOKENIZER)]) as engine,
          live_server(create_app(engine)) as url, sync_api.sync_playwright() as p):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url)
        sync_api.expect(page.get_by_role("status", name="Server status")).to_have_text("Ready", timeout=30_000)
        yield page
        browser.close()


def colour(page, word: str) -> str:
    span = page.locator(".lyrics span.rhyme", has_text=word)
    sync_api.expect(span).to_have_count(1, timeout=10_000)
    return span.evaluate("e => getComputedStyle(e).color")


def test_rhyming_line_ends_of_a_pasted_song_share_a_colour(page, tmp_path):
    page.get_by_label("Prompt").fill("we ride at night\nthe city is bright\nrain on the shoe\nthe sky is blue\n"
                                     "nothing else here\n")
    page.get_by_role("button", name="Show rhymes").click()
    night, bright, shoe, blue = (colour(page, w) for w in ("night", "bright", "shoe", "blue"))
    assert night == bright and shoe == blue and night != shoe
    plain = page.locator(".lyrics .prompt-text").evaluate("e => getComputedStyle(e).color")
    assert night != plain
    assert page.locator(".lyrics span.rhyme", has_text="here").count() == 0  # rhymes with nothing near it
    page.screenshot(path=str(tmp_path / "rhymes.png"))


def test_a_scheme_and_candidates_are_sent_and_the_verse_arrives(page):
    page.get_by_label("Prompt").fill("yo\n")
    page.get_by_label("Rhyme scheme").select_option("AABB")
    page.get_by_label("Candidates per line").fill("2")
    page.get_by_label("Lines").fill("2")
    page.get_by_role("slider", name="Length").fill("16")
    with page.expect_request("**/api/generate") as request:
        page.get_by_role("button", name="Generate").click()
    body = request.value.post_data_json
    assert (body["scheme"], body["candidates"], body["lines"]) == ("AABB", 2, 2)
    sync_api.expect(page.get_by_role("button", name="Generate")).to_be_enabled(timeout=30_000)
    assert page.get_by_test_id("generated").inner_text().count("\n") >= 1
