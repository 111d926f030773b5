"""Crashes lose nothing: a killed worker, a task that kills its process, Redis SIGKILLed mid-task."""
import os
import signal
import time

import pytest

from conftest import TEST_REDIS_PORT, TEST_REDIS_URL
from course.jobs import dead_letters, redis_server, tasks, workers
from course.jobs.celery_app import app
from course.settings import settings

VISIBILITY_TIMEOUT = 10  # seconds: short here; the worker's time limits derive from it (6 s, 8 s)
RESTORE_EVERY = 1  # what celery_app derives from it: a worker looks for orphaned messages every second


def start_worker(monkeypatch, simulator, visibility_timeout=VISIBILITY_TIMEOUT):
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", str(visibility_timeout))
    worker = workers.ensure_worker()
    assert worker.started_here
    return worker


def wait_for(predicate, seconds: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def test_a_killed_workers_tasks_finish_on_a_worker_started_at_once(private_redis, simulator, monkeypatch):
    app.control.purge()
    worker = start_worker(monkeypatch, simulator)
    try:
        results = [tasks.long_report.delay(steps=2, step_seconds=0.5) for _ in range(10)]
        wait_for(lambda: any(r.state in ("STARTED", "PROGRESS") for r in results), 10, every=0.02)
        worker.kill()  # SIGKILL, mid-task: nothing is acknowledged for the running ones
        killed_at = time.monotonic()
    finally:
        worker.stop()
    finished_before = sum(r.state == "SUCCESS" for r in results)
    assert finished_before < 10

    # Messages unacknowledged for longer than the visibility timeout are restored by any worker,
    # which looks every RESTORE_EVERY seconds (kombu's default: every 100 s).
    worker = start_worker(monkeypatch, simulator)
    try:
        done = [r.get(timeout=VISIBILITY_TIMEOUT + RESTORE_EVERY + 15) for r in results]
        recovery = time.monotonic() - killed_at
    finally:
        worker.stop()
    assert len(done) == 10 and all(d["steps"] == 2 for d in done)
    assert recovery < VISIBILITY_TIMEOUT + RESTORE_EVERY + 10
    print(f"\nkilled with {10 - finished_before} unfinished; all 10 results {recovery:.1f} s after the kill "
          f"(visibility timeout {VISIBILITY_TIMEOUT} s)")


def test_a_task_that_kills_its_process_runs_max_deliveries_times_then_fails_for_good(
        private_redis, simulator, monkeypatch):
    app.control.purge()
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", str(VISIBILITY_TIMEOUT))
    # Prefork: each task runs in a pool process of its own, so a task that kills its process
    # leaves the worker serving (under --pool threads it would take the whole worker down).
    worker = workers.start_worker(extra=("--pool", "prefork"))
    try:
        poison = tasks.crash_worker_process.delay()
        with pytest.raises(Exception, match="delivered 4 times") as failure:
            poison.get(timeout=60)
        assert type(failure.value).__name__ == "TooManyDeliveries" and poison.state == "FAILURE"
        assert tasks.runs_of(poison.id) == settings.max_deliveries == 3
        assert tasks.add.delay(20, 22).get(timeout=10) == 42  # the worker goes on serving
        time.sleep(3)
        assert tasks.runs_of(poison.id) == 3  # and never runs it again
    finally:
        worker.stop()
    entry = dead_letters.get(poison.id)
    assert entry["task"] == "course.jobs.tasks.crash_worker_process"
    assert entry["reason"] == "too many deliveries" and entry["deliveries"] == 4
    assert "TooManyDeliveries" in entry["error"] and "TooManyDeliveries" in entry["traceback"]


def kill_redis(folder) -> None:
    pid = int((folder / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # no shutdown, no final save: only the append-only file remains
    assert wait_for(lambda: redis_server.redis_problem(TEST_REDIS_URL) is not None, 5)
    (folder / "redis.pid").unlink()


def test_a_task_running_when_redis_is_killed_finishes_once(private_redis, simulator, monkeypatch):
    app.control.purge()
    worker = start_worker(monkeypatch, simulator, visibility_timeout=20)
    try:
        job = tasks.counted_job.delay(steps=4, step_seconds=0.5)
        assert wait_for(lambda: job.state == "PROGRESS", 15)
        kill_redis(private_redis)
        time.sleep(3)
        redis_server.start_redis(TEST_REDIS_PORT, private_redis)  # same folder: it reads its append-only file
        assert job.get(timeout=60) == {"steps": 4, "run": 1}
        # Acknowledged on the reconnected channel: nothing left that Redis could hand out again.
        assert wait_for(lambda: redis_server.connect().hlen("unacked") == 0, 10)
        assert tasks.runs_of(job.id) == 1
        assert worker.process.poll() is None and tasks.add.delay(1, 2).get(timeout=10) == 3
    finally:
        worker.stop()


def test_a_dropped_connection_does_not_run_the_running_task_twice(private_redis, simulator, monkeypatch):
    app.control.purge()
    worker = start_worker(monkeypatch, simulator, visibility_timeout=20)
    try:
        job = tasks.counted_job.delay(steps=4, step_seconds=0.5)
        assert wait_for(lambda: job.state == "PROGRESS", 15)
        redis_server.connect().client_kill_filter(_type="normal", skipme=True)  # Redis stays up
        assert job.get(timeout=30) == {"steps": 4, "run": 1}
        time.sleep(2)  # a copy put back in the queue would have started by now
        assert tasks.runs_of(job.id) == 1
        assert wait_for(lambda: redis_server.connect().hlen("unacked") == 0, 5)
    finally:
        worker.stop()


def test_a_stopped_worker_hands_back_a_task_it_held_for_its_countdown_at_once(private_redis, simulator, monkeypatch):
    app.control.purge()
    worker = start_worker(monkeypatch, simulator, visibility_timeout=30)
    sent_at = time.monotonic()
    delayed = tasks.add.apply_async((2, 2), countdown=5)
    try:
        assert wait_for(lambda: redis_server.connect().hlen("unacked") == 1, 5)  # the worker holds it
    finally:
        worker.stop()  # a warm shutdown puts what it held back in the queue, not after 30 s
    worker = start_worker(monkeypatch, simulator, visibility_timeout=30)
    try:
        assert delayed.get(timeout=40) == 4
        assert time.monotonic() - sent_at < 20
    finally:
        worker.stop()
