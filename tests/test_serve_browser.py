"""The front end in a real browser (Debian's Chromium driven by Playwright): type a prompt, generate, watch the
lyrics stream in, stop, and check the layout on a phone-sized screen. Screenshots go to the test's tmp_path."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from serve_support import TOKENIZER, live_server, running_engine, tiny_model

from rapgpt.serve.api import ServeSettings, create_app
from rapgpt.serve.config import LIMITS
from rapgpt.serve.engine import ServedModel

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_DELAY = 0.02  # seconds added to each decoding step, so that a person (and this test) can press stop in time

if not CHROMIUM.exists():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def slowed(model):
    forward = model.forward

    @functools.wraps(forward)
    def slow_forward(*args, **kwargs):
        time.sleep(STEP_DELAY)
        return forward(*args, **kwargs)

    model.forward = slow_forward
    return model


@pytest.fixture(scope="module")
def server():
    models = [ServedModel("tiny", slowed(tiny_model(0)), TOKENIZER),
              ServedModel("verses", slowed(tiny_model(1)), TOKENIZER, parent="tiny")]
    with running_engine(models) as engine, live_server(create_app(engine)) as url:
        yield engine, url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_typing_a_prompt_streams_lyrics_until_stop_is_pressed(server, browser, tmp_path):
    engine, url = server
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    page.goto(url)
    expect = sync_api.expect
    expect(page.get_by_role("status", name="Server status")).to_have_text("Ready", timeout=30_000)
    voice = page.get_by_label("Voice")
    expect(voice.locator("option")).to_have_count(2)
    assert voice.locator("option").all_inner_texts() == ["tiny · base model", "verses · fine-tuned"]
    voice.select_option("verses")

    page.get_by_label("Prompt").fill("the city never sleeps\n")
    page.get_by_role("slider", name="Length").focus()
    page.keyboard.press("End")  # the longest generation the slider allows
    generate, stop = page.get_by_role("button", name="Generate"), page.get_by_role("button", name="Stop")
    generate.click()

    generated = page.get_by_test_id("generated")
    expect(generated).not_to_be_empty(timeout=30_000)
    first = len(generated.inner_text())
    page.wait_for_function(f"document.querySelector('[data-testid=generated]').textContent.length > {first + 5}",
                           timeout=30_000)  # more text arrived while we watched: it streams
    expect(stop).to_be_enabled()
    page.screenshot(path=str(tmp_path / "streaming.png"))

    stop.click()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled(timeout=10_000)
    stopped = generated.inner_text()
    assert 0 < len(stopped) < 1024
    page.wait_for_timeout(500)
    assert generated.inner_text() == stopped  # nothing more arrives after stop
    expect(page.get_by_role("complementary", name="History")).to_contain_text("stopped")
    cancelled = engine.metrics.generations.labels("verses", "cancelled")
    deadline = time.monotonic() + 10
    while cancelled._value.get() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancelled._value.get() == 1  # pressing stop ended the generation on the server too
    page.screenshot(path=str(tmp_path / "stopped.png"), full_page=True)
    assert page.get_by_role("alert").count() == 0

    lyrics = "the city never sleeps\n" + stopped
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == lyrics
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename.startswith("the-city-never-sleeps-")
    assert Path(download.value.path()).read_text() == lyrics
    context.close()


def test_a_server_with_an_api_key_asks_for_it_then_works(server, browser):
    engine, _ = server
    with live_server(create_app(engine, ServeSettings(api_key="open-sesame"))) as url:
        page = browser.new_page()
        page.goto(url)
        sync_api.expect(page.get_by_role("alert")).to_contain_text("API key", timeout=30_000)
        page.get_by_label("API key").fill("open-sesame")
        page.get_by_role("button", name="Save").click()
        sync_api.expect(page.get_by_label("Voice").locator("option")).to_have_count(2, timeout=30_000)
        page.get_by_label("Prompt").fill("ok ")
        page.get_by_role("button", name="Generate").click()
        sync_api.expect(page.get_by_test_id("generated")).not_to_be_empty(timeout=30_000)
        page.get_by_role("button", name="Stop").click()
        assert page.get_by_role("alert").count() == 0
        page.close()


def test_errors_are_shown_plainly(server, browser):
    _, url = server
    page = browser.new_page()
    page.goto(url)
    sync_api.expect(page.get_by_role("status", name="Server status")).to_have_text("Ready", timeout=30_000)
    page.get_by_label("Prompt").fill("Capital letters are not in this model's alphabet")
    page.get_by_role("button", name="Generate").click()
    alert = page.get_by_role("alert")
    sync_api.expect(alert).to_contain_text("not in this character model's vocabulary", timeout=30_000)
    page.close()


def test_the_page_fits_a_phone_screen(server, browser, tmp_path):
    _, url = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                            has_touch=True)
    page.goto(url)
    sync_api.expect(page.get_by_role("status", name="Server status")).to_have_text("Ready", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    for name in ("Generate", "Stop"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 36
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.get_by_label("Prompt").fill("late night ")
    page.get_by_role("button", name="Generate").tap()
    sync_api.expect(page.get_by_test_id("generated")).not_to_be_empty(timeout=30_000)
    sync_api.expect(page.get_by_role("region", name="Lyrics")).to_be_in_viewport()  # scrolled to the lyrics
    page.get_by_role("button", name="Stop").tap()
    sync_api.expect(page.get_by_role("button", name="Generate")).to_be_enabled(timeout=10_000)
    page.screenshot(path=str(tmp_path / "phone-lyrics.png"))
    page.close()


def test_the_studio_takes_its_limits_from_the_server(server, browser):
    _, url = server
    page = browser.new_page()
    page.goto(url)
    expect = sync_api.expect
    expect(page.get_by_label("Prompt")).to_have_attribute("maxlength", str(LIMITS.prompt_chars), timeout=30_000)
    expect(page.get_by_role("slider", name="Length")).to_have_attribute("max", str(LIMITS.max_new_tokens))
    page.close()
    # Other limits from the server, other bounds in the studio: it keeps no copy of its own.
    page = browser.new_page()
    page.route("**/api/limits", lambda route: route.fulfill(json={**asdict(LIMITS), "prompt_chars": 123,
                                                                  "max_new_tokens": 640}))
    page.goto(url)
    expect(page.get_by_label("Prompt")).to_have_attribute("maxlength", "123", timeout=30_000)
    expect(page.get_by_role("slider", name="Length")).to_have_attribute("max", "640")
    page.close()


def test_the_api_docs_work_with_every_request_off_the_machine_blocked(server, browser, tmp_path):
    _, url = server
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    asked: list[str] = []
    blocked: list[str] = []

    def only_this_machine(route) -> None:
        asked.append(route.request.url)
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_machine)
    page = context.new_page()
    page.goto(f"{url}/docs")
    expect = sync_api.expect
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible(timeout=30_000)
    listed = set(paths.all_inner_texts())
    assert {"/api/generate", "/v1/completions", "/v1/models", "/health", "/metrics"} <= {p.strip() for p in listed}

    operation = page.locator(".opblock-post", has=page.locator(".opblock-summary-path", has_text="/api/generate"))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill(
        json.dumps({"prompt": "the night ", "max_new_tokens": 8, "temperature": 0, "stop": []})
    )
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200", timeout=30_000)
    answer = json.loads(live.locator("tr.response .highlight-code pre").first.inner_text())
    assert answer["usage"]["completion_tokens"] == 8 and answer["finish_reason"] == "length"
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    context.close()
    assert blocked == []  # the page asked for nothing off this machine
    assert any(u.endswith("/swagger-ui/swagger-ui-bundle.js") for u in asked)
