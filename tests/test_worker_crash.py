"""A worker killed with SIGKILL mid-task loses nothing: acks late + the visibility timeout."""
import time

from course.jobs import redis_server, tasks, workers
from course.jobs.celery_app import app

VISIBILITY_TIMEOUT = 10  # seconds: short here; the worker's time limits derive from it (6 s, 8 s)


def start_worker(monkeypatch, simulator):
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", str(VISIBILITY_TIMEOUT))
    worker = workers.ensure_worker()
    assert worker.started_here
    return worker


def test_tasks_of_a_killed_worker_all_finish_on_the_next_one(private_redis, simulator, monkeypatch):
    app.control.purge()
    worker = start_worker(monkeypatch, simulator)
    try:
        results = [tasks.long_report.delay(steps=2, step_seconds=0.5) for _ in range(10)]
        deadline = time.monotonic() + 10
        while not any(r.state in ("STARTED", "PROGRESS") for r in results) and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.kill()  # SIGKILL, mid-task: nothing is acknowledged for the running ones
        killed_at = time.monotonic()
    finally:
        worker.stop()
    finished_before = sum(r.state == "SUCCESS" for r in results)
    assert finished_before < 10

    # Unacknowledged messages older than the visibility timeout are restored when a worker starts.
    time.sleep(VISIBILITY_TIMEOUT + 1)
    worker = start_worker(monkeypatch, simulator)
    try:
        done = [r.get(timeout=30) for r in results]
        recovery = time.monotonic() - killed_at
    finally:
        worker.stop()
    assert len(done) == 10 and all(d["steps"] == 2 for d in done)
    print(f"\nkilled with {10 - finished_before} unfinished; all 10 results {recovery:.1f} s after the kill "
          f"(visibility timeout {VISIBILITY_TIMEOUT} s)")
