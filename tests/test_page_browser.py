"""The job API's page in headless Chromium (Debian's, driven by Playwright): a learner pastes a
token, submits texts, and the <progress> bar fills from the event stream; cancel stops it; a
missing worker, a limit and a lost stream are said in words, never shown as a frozen bar.

Needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium, as root) and the
playwright package (requirements-test.txt); without them this file is skipped. No browser is
ever downloaded. The finished page is saved to .course-data/screenshots/job-page.png.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ROOT
from course.api.server import RunningApi
from course.samples import REVIEWS
from test_api import TOKENS, api_env

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_ENABLE = "install Debian's chromium (as root: apt-get install -y chromium) and run make test"
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} to open the page: {HOW_TO_ENABLE}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=f"no playwright: {HOW_TO_ENABLE}")

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / ".course-data" / "screenshots"  # git-ignored
CALL_SECONDS = 0.25  # every LLM call: slow enough to see the bar move


@pytest.fixture(scope="module")
def simulator():
    from course.llm.simulator import launcher

    with launcher.start(latency=CALL_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def api(private_redis, tmp_path_factory):
    from course.jobs.celery_app import app

    app.control.purge()
    running = RunningApi(env=api_env(), log=tmp_path_factory.mktemp("api") / "api.log").start()
    yield running
    running.close()


@pytest.fixture(scope="module")
def page(api):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        # Only the API on 127.0.0.1: the page must need nothing from anywhere else.
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(api.url)
                   else route.abort())
        page.goto(f"{api.url}/")
        page.fill("#token", TOKENS["alice"])
        page.click("text=Use it")
        wait_for_text(page, "#caller", "You are alice")
        yield page
        browser.close()


def wait_for_text(page, selector: str, words: str, timeout: float = 15) -> None:
    """Until the element's text has `words` (polled from here: the page's policy forbids the eval
    that Playwright's wait_for_function uses, which also shows the page runs under its policy)."""
    deadline = time.monotonic() + timeout
    while words not in (page.text_content(selector) or ""):
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never said {words!r}; it says {page.text_content(selector)!r}")
        time.sleep(0.05)


def state(page) -> dict:
    return page.evaluate("""() => ({value: document.getElementById('bar').value,
        max: document.getElementById('bar').max, status: document.getElementById('status').textContent,
        stream: document.getElementById('stream').textContent, message: document.getElementById('message').textContent,
        error: document.getElementById('error').textContent})""")


def submit(page, texts: list[str], kind: str = "sentiment") -> None:
    page.select_option("#kind", kind)
    page.fill("#texts", "\n".join(texts))
    page.click("#submit")


def wait_until(page, condition, timeout: float = 30, every: float = 0.05) -> list[dict]:
    """The page's state every `every` seconds until `condition(state)`; all the states seen."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(state(page))
        if condition(seen[-1]):
            return seen
        time.sleep(every)
    raise AssertionError(f"the page never got there; last seen: {seen[-1] if seen else None}")


def test_with_no_worker_the_page_says_so_and_the_job_waits_until_canceled(page, api):
    wait_for_text(page, "#worker", "No worker answers")
    submit(page, REVIEWS[:2])
    seen = wait_until(page, lambda s: s["status"] == "queued")
    assert "waiting for a worker" in seen[-1]["message"] and "make worker" in seen[-1]["message"]
    page.click("#cancel")
    wait_until(page, lambda s: s["status"] == "canceled")
    assert page.is_disabled("#cancel")


def test_the_bar_fills_from_the_event_stream_and_the_results_show(page, api, worker):
    wait_for_text(page, "#worker", "A worker answers")
    texts = [REVIEWS[0], REVIEWS[1], REVIEWS[3], REVIEWS[6], REVIEWS[8]]
    submit(page, texts)
    seen = wait_until(page, lambda s: s["status"] == "succeeded")
    values = [s["value"] for s in seen if s["status"] in ("queued", "running")]
    assert values == sorted(values), "the bar never moves back"
    assert any(0 < value < len(texts) for value in values), f"the bar jumped straight to the end: {values}"
    assert seen[-1]["value"] == seen[-1]["max"] == len(texts)
    assert page.text_content("#count") == f"{len(texts)} / {len(texts)}"
    results = page.locator("#results li").all_text_contents()
    assert len(results) == len(texts) and all(text in row for text, row in zip(texts, results))
    assert [row.removeprefix(text).strip().lower() for text, row in zip(texts, results)] == \
        ["positive", "negative", "positive", "negative", "positive"]
    assert "the stream ended" in seen[-1]["stream"] and not seen[-1]["error"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "job-page.png"), full_page=True)


def test_cancel_stops_a_running_job_and_its_bar(page, api, worker):
    submit(page, REVIEWS[:8], kind="summary")
    wait_until(page, lambda s: s["status"] == "running" and s["value"] >= 1)
    page.click("#cancel")
    stopped = wait_until(page, lambda s: s["status"] == "canceled")[-1]
    time.sleep(3 * CALL_SECONDS)
    assert state(page)["value"] == stopped["value"] < 8
    assert page.is_disabled("#cancel")


def test_a_lost_stream_says_so_reconnects_and_the_job_still_ends_on_the_page(page, api, worker):
    submit(page, REVIEWS[:8], kind="keywords")
    wait_until(page, lambda s: s["status"] == "running" and s["value"] >= 1)
    api.kill()
    wait_until(page, lambda s: "reconnecting" in s["stream"], timeout=10)
    api.start()
    final = wait_until(page, lambda s: s["status"] == "succeeded")[-1]
    assert final["value"] == final["max"] == 8 and page.locator("#results li").count() == 8


def test_errors_are_words_on_the_page(page, api, worker):
    submit(page, ["one line"] * 9)  # API_MAX_TEXTS is 8 here
    wait_for_text(page, "#error", "at most 8 texts")
    page.click("#forget")
    submit(page, ["hello"])
    wait_for_text(page, "#error", "Paste your token first")
    page.fill("#token", "not-a-token-of-anyone")
    page.click("text=Use it")
    wait_for_text(page, "#caller", "not accepted")
