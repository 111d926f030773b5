"""Webhooks against real HTTP servers: only allowed hosts are called, never through a redirect,
every delivery is signed, and the receiver refuses forged, stale and replayed calls."""
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from course.jobs import webhook
from conftest import ROOT, TEST_REDIS_PORT, TEST_WEBHOOK_PORT, free_port

BODY = {"id": "task-1", "state": "SUCCESS"}


def only(url: str) -> frozenset[str]:
    """An allow-list with just this URL's host:port."""
    return frozenset({url.split("/")[2]})


@contextmanager
def answering(*statuses: int, location: str = ""):
    """A plain HTTP server that answers POSTs with these statuses in turn (the last one repeats)."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(self.path)
            self.send_response(statuses[min(len(hits), len(statuses)) - 1])
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", hits
    finally:
        server.shutdown()
        server.server_close()


# ---- the sender ------------------------------------------------------------------------


def test_an_allowed_delivery_is_signed_and_accepted():
    with webhook.receiver(port=0) as hook:
        assert webhook.deliver(hook.url, BODY, allowed=only(hook.url)) == 204
        call = hook.wait(timeout=5)
    assert call["accepted"] and call["reason"] is None and call["body"] == BODY
    stamp, signature = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", call["signature"]).groups()
    assert abs(int(stamp) - time.time()) < 5
    expected = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), f"{stamp}.{call['raw_body']}".encode(),
                        hashlib.sha256).hexdigest()
    assert signature == expected


def test_by_default_only_the_course_receiver_is_allowed_and_it_listens_there():
    assert webhook.allowed_destinations() == {f"127.0.0.1:{TEST_WEBHOOK_PORT}", f"localhost:{TEST_WEBHOOK_PORT}"}
    with webhook.receiver() as hook:
        assert hook.url == f"http://127.0.0.1:{TEST_WEBHOOK_PORT}/hooks/job-done"
        assert webhook.deliver(hook.url, BODY) == 204  # the default allow-list, no argument
        assert hook.wait(timeout=5)["body"] == BODY


def test_the_redis_port_is_refused_without_connecting(private_redis):
    watcher = redis.Redis(port=TEST_REDIS_PORT)  # one connection, kept: its own reads add none
    before = watcher.info("stats")["total_connections_received"]
    with pytest.raises(webhook.WebhookRefused, match=rf"127\.0\.0\.1:{TEST_REDIS_PORT} refused: it is not on the allow-list"):
        webhook.deliver(f"http://127.0.0.1:{TEST_REDIS_PORT}/", {"cmd": "FLUSHALL"})
    assert watcher.info("stats")["total_connections_received"] == before
    assert "SECURITY ATTACK" not in (private_redis / "redis.log").read_text()


def test_a_simulator_admin_route_is_refused_and_nothing_is_reset(simulator):
    def requests_counted():
        with urllib.request.urlopen(f"{simulator.url}/sim/stats", timeout=5) as answer:
            return json.load(answer)["requests"]

    urllib.request.urlopen(f"{simulator.base_url}/models", timeout=5).close()
    before = requests_counted()
    assert before >= 1
    with pytest.raises(webhook.WebhookRefused):
        webhook.deliver(f"{simulator.url}/sim/reset", BODY)
    assert requests_counted() == before  # a reset would have zeroed the counter


def test_a_refusal_reads_the_same_for_an_open_and_a_closed_port(private_redis):
    closed = free_port()
    messages = []
    for port in (TEST_REDIS_PORT, closed):
        with pytest.raises(webhook.WebhookRefused) as refused:
            webhook.deliver(f"http://127.0.0.1:{port}/x", BODY)
        messages.append(str(refused.value).replace(str(port), "PORT"))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21/x", "file:///etc/passwd", "not a url",
                                 f"http://user:pw@127.0.0.1:{TEST_WEBHOOK_PORT}/hooks/job-done",
                                 f"http://127.1:{TEST_WEBHOOK_PORT}/hooks/job-done"],
                         ids=["ftp", "file", "not-a-url", "credentials", "alias-127.1"])
def test_other_schemes_credentials_and_aliases_are_refused(url):
    with pytest.raises(webhook.WebhookRefused):
        webhook.check_url(url)


def test_a_redirect_is_not_followed():
    with answering(204) as (target, target_hits), answering(307, location=target) as (redirecting, hits):
        with pytest.raises(webhook.WebhookFailed, match="answered 307, a redirect, and webhooks never follow"):
            webhook.deliver(redirecting, BODY, allowed=only(redirecting) | only(target))
    assert len(hits) == 1 and target_hits == []


def test_a_closed_port_fails_with_its_reason_after_three_attempts():
    closed = free_port()
    began = time.monotonic()
    with pytest.raises(webhook.WebhookFailed) as failed:
        webhook.deliver(f"http://127.0.0.1:{closed}/hook", BODY, allowed=frozenset({f"127.0.0.1:{closed}"}))
    assert str(failed.value) == f"webhook to 127.0.0.1:{closed} failed: connection refused (3 attempts)"
    assert time.monotonic() - began >= 1.5  # 0.5 s, then 1 s between the attempts


def test_a_server_error_is_retried_and_a_refusal_is_not():
    with answering(503, 500, 204) as (url, hits):
        assert webhook.deliver(url, BODY, allowed=only(url)) == 204
    assert len(hits) == 3
    with answering(401) as (url, hits):
        with pytest.raises(webhook.WebhookFailed, match=r"failed: it answered 401$"):
            webhook.deliver(url, BODY, allowed=only(url))
    assert len(hits) == 1


def test_a_badly_written_allow_list_says_how_to_write_it():
    with pytest.raises(webhook.WebhookRefused, match="write each entry as host:port"):
        webhook.allowed_destinations("127.0.0.1")


# ---- the receiver ----------------------------------------------------------------------


def test_forged_stale_and_replayed_calls_are_rejected_with_their_reason():
    with webhook.receiver(port=0) as hook:
        webhook.deliver(hook.url, BODY, allowed=only(hook.url))
        good = hook.wait(timeout=5)
        statuses = [hook.send_forged(BODY), hook.send_forged(BODY, how="wrong-secret"),
                    hook.send_forged(BODY, how="stale"), hook.replay(good)]
        tampered = dict(good, raw_body=good["raw_body"].replace("SUCCESS", "FAILURE"))
        statuses.append(hook.replay(tampered))  # a valid signature on another body
    assert statuses == [401, 401, 401, 409, 401]
    reasons = [call["reason"] for call in hook.rejected]
    assert reasons[0] == "no signature"
    assert reasons[1] == "signature does not match"
    assert re.fullmatch(r"stale: signed 60[01] s ago, more than 300 s from now", reasons[2])  # 600 s, rounded
    assert reasons[3] == "replayed: this signature was already accepted"
    assert reasons[4] == "signature does not match"
    assert [call["accepted"] for call in hook.calls] == [True, False, False, False, False, False]


@pytest.mark.parametrize("path, data, code", [("/elsewhere", b"{}", 404), ("", b"not json", 400)])
def test_other_paths_and_signed_bodies_that_are_not_json_are_refused(path, data, code):
    with webhook.receiver(port=0) as hook:
        url = hook.url.rsplit("/hooks/", 1)[0] + path if path else hook.url
        request = urllib.request.Request(url, data=data, method="POST", headers=webhook.signed_headers(data))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == code
    assert hook.accepted == [] and hook.wait(timeout=0.1) is None


def test_a_taken_port_gives_a_clear_message():
    with webhook.receiver(port=0) as first:
        port = int(first.url.split(":")[2].split("/")[0])
        with pytest.raises(webhook.Stop, match=f"cannot listen on 127.0.0.1:{port}.*WEBHOOK_PORT"):
            with webhook.receiver(port=port):
                pass


# ---- the secret ------------------------------------------------------------------------


def test_without_a_setting_one_secret_is_made_kept_private_and_shared(tmp_path):
    kept = tmp_path / "webhook-secret"
    program = ("import sys; from pathlib import Path; from course.jobs import webhook; "
               "sys.stdout.write(webhook.signing_secret(Path(sys.argv[1])).decode())")
    env = {**os.environ, "WEBHOOK_SECRET": ""}
    racing = [subprocess.Popen([sys.executable, "-c", program, str(kept)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, text=True) for _ in range(4)]
    secrets_seen = {process.communicate(timeout=30)[0] for process in racing}
    assert len(secrets_seen) == 1 and re.fullmatch(r"[0-9a-f]{64}", secrets_seen.pop())
    assert kept.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["webhook-secret"]  # no draft left behind


# ---- the task, on a real worker --------------------------------------------------------


@pytest.fixture(scope="module")
def closed_port():
    return free_port()


@pytest.fixture(scope="module")
def hook_worker(private_redis, simulator, closed_port):
    """A worker that may also call one closed port, to see a delivery fail."""
    from course.jobs import workers
    from course.jobs.celery_app import app

    app.control.purge()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", simulator.base_url)
        env.setenv("WEBHOOK_ALLOWED", f"127.0.0.1:{TEST_WEBHOOK_PORT},127.0.0.1:{closed_port}")
        running = workers.ensure_worker()
    assert running.started_here
    yield running
    running.stop()


def test_the_task_delivers_a_signed_webhook_the_receiver_accepts(hook_worker):
    from course.jobs import tasks

    with webhook.receiver() as hook:
        result = tasks.report_with_updates.delay(2, 0.05, webhook_url=hook.url)
        outcome = result.get(timeout=20)
        assert outcome["steps"] == 2 and 0.1 <= outcome["seconds"] < 5  # measured: two 0.05 s steps and more
        call = hook.wait(timeout=5)
    assert call["accepted"] and call["body"]["id"] == result.id
    assert len(hook.calls) == 1


def test_the_task_refuses_the_redis_port_before_doing_any_work(hook_worker):
    from course.jobs import tasks

    result = tasks.report_with_updates.delay(50, 0.2, webhook_url=f"http://127.0.0.1:{TEST_REDIS_PORT}/")
    began = time.monotonic()
    with pytest.raises(webhook.WebhookRefused, match="not on the allow-list, so nothing was sent"):
        result.get(timeout=20)
    assert time.monotonic() - began < 5  # 50 steps of 0.2 s were never run
    assert result.state == "FAILURE"


def test_a_failed_delivery_is_the_task_failure_with_its_reason(hook_worker, closed_port):
    from course.jobs import tasks

    result = tasks.report_with_updates.delay(1, 0, webhook_url=f"http://127.0.0.1:{closed_port}/hook")
    with pytest.raises(webhook.WebhookFailed) as failed:
        result.get(timeout=20)
    assert str(failed.value) == f"webhook to 127.0.0.1:{closed_port} failed: connection refused (3 attempts)"
    assert result.state == "FAILURE"
