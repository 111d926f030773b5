"""With no worker running, the job API still takes jobs: they wait in the queue, say that no
worker answers, can be canceled there, and run as soon as a worker starts."""
from __future__ import annotations

import time

import httpx
import pytest

from course.api.server import RunningApi
from course.jobs import workers
from course.samples import REVIEWS
from test_api import api_env, final, is_problem


@pytest.fixture(scope="module")
def api(private_redis, tmp_path_factory):
    from course.jobs.celery_app import app

    app.control.purge()  # nothing left over from another module's tests
    running = RunningApi(env=api_env(), log=tmp_path_factory.mktemp("api") / "api.log").start()
    yield running
    running.close()


def worker_seen(api: RunningApi, expected: bool, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{api.url}/health").json()["worker"] is not expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return httpx.get(f"{api.url}/health").json()["worker"] is expected


def test_jobs_wait_for_a_worker_say_so_and_run_once_one_starts(api, simulator, monkeypatch):
    assert workers.workers_answering(timeout=1) == [], "a worker answers on the tests' private Redis"
    assert worker_seen(api, False)
    alice = api.caller("alice")
    waiting = alice.post("/jobs", json={"kind": "sentiment", "texts": REVIEWS[:2]}).json()
    dropped = alice.post("/jobs", json={"kind": "summary", "texts": REVIEWS[:2]}).json()
    assert waiting["status"] == "queued" and "waiting for a worker" in waiting["message"]
    assert "make worker" in waiting["message"]
    time.sleep(1)
    assert alice.get(f"/jobs/{waiting['id']}").json()["status"] == "queued"  # nothing runs it yet
    canceled = alice.delete(f"/jobs/{dropped['id']}")
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"

    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    worker = workers.start_worker()
    try:
        assert final(api, waiting["id"])["status"] == "succeeded"
        assert worker_seen(api, True)
        later = alice.post("/jobs", json={"kind": "summary", "texts": ["now"]}).json()
        assert later["message"] == "waiting in the queue for a free worker"
        final(api, later["id"])
        still = alice.get(f"/jobs/{dropped['id']}").json()
        assert still["status"] == "canceled" and still["progress"]["current"] == 0  # the worker skipped it
        is_problem(alice.delete(f"/jobs/{dropped['id']}"), 409)
    finally:
        worker.stop()
