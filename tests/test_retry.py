"""course.llm.retry on real errors: the real `openai` SDK against a real HTTP server on 127.0.0.1."""
import contextlib
import email.utils
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from conftest import free_port
from course.llm import retry


@contextlib.contextmanager
def server_answering(status: int, headers: dict | None = None, delay: float = 0.0):
    """An OpenAI-shaped server that answers every request with `status` and `headers`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            body = json.dumps({"error": {"message": f"status {status}", "type": "test", "code": None}}).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def error_from(base_url: str, timeout: float = 5.0) -> Exception:
    """The exception the real SDK raises for one chat call to `base_url`."""
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=timeout)
    with pytest.raises(Exception) as raised:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    return raised.value


@pytest.mark.parametrize("status, transient", [(429, True), (500, True), (503, True), (408, True),
                                               (400, False), (401, False), (404, False)])
def test_is_transient_follows_the_status(status, transient):
    with server_answering(status) as url:
        assert retry.is_transient(error_from(url)) is transient


def test_a_refused_connection_and_a_timeout_are_transient():
    assert retry.is_transient(error_from(f"http://127.0.0.1:{free_port()}/v1"))
    with server_answering(200, delay=2) as url:
        timed_out = error_from(url, timeout=0.3)
    assert isinstance(timed_out, openai.APITimeoutError) and retry.is_transient(timed_out)
    assert not retry.is_transient(ValueError("bad argument"))


def test_retry_after_ms_wins_over_retry_after():
    with server_answering(429, {"retry-after": "2", "retry-after-ms": "250"}) as url:
        assert retry.retry_after_seconds(error_from(url)) == pytest.approx(0.25)


def test_retry_after_in_seconds_and_as_an_http_date():
    with server_answering(503, {"retry-after": "3"}) as url:
        assert retry.retry_after_seconds(error_from(url)) == 3
    in_ten_seconds = email.utils.formatdate(time.time() + 10, usegmt=True)
    with server_answering(429, {"retry-after": in_ten_seconds}) as url:
        assert 8 <= retry.retry_after_seconds(error_from(url)) <= 10


def test_a_429_without_retry_after_waits_for_the_exhausted_limit_to_reset():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s",
               "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "6m0s"}
    with server_answering(429, headers) as url:
        assert retry.retry_after_seconds(error_from(url)) == 1.0
    with server_answering(429, {"x-ratelimit-reset-tokens": "20ms"}) as url:
        assert retry.retry_after_seconds(error_from(url)) == pytest.approx(0.02)


def test_no_hint_means_none():
    with server_answering(500) as url:
        assert retry.retry_after_seconds(error_from(url)) is None
    assert retry.retry_after_seconds(ValueError("no response")) is None


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5),
                                           ("", None), ("soon", None), ("5", None)])
def test_durations_in_the_reset_headers(text, seconds):
    assert retry.duration_seconds(text) == seconds


def test_backoff_is_full_jitter_under_a_growing_ceiling():
    samples = {attempt: [retry.backoff_seconds(attempt, base=1, cap=5) for _ in range(2000)] for attempt in range(5)}
    for attempt, waits in samples.items():
        ceiling = min(5, 2 ** attempt)
        assert 0 <= min(waits) < 0.05 * ceiling and 0.95 * ceiling < max(waits) <= ceiling
        assert statistics.mean(waits) == pytest.approx(ceiling / 2, rel=0.1)  # uniform: spread, not bunched


def test_the_delay_is_at_least_what_the_server_asked_and_at_most_the_cap():
    with server_answering(429, {"retry-after-ms": "1500"}) as url:
        error = error_from(url)
    assert all(1.5 <= retry.delay_before_retry(error, attempt=0, cap=10) <= 10 for _ in range(200))
    assert retry.delay_before_retry(error, attempt=0, cap=1.0) == 1.0
