"""The course's thread pool stops tasks as prefork does: revoke(terminate=True) and the time
limits, raised in the task's thread; never in a thread whose task has finished. First on the
pool itself, then on a real worker (`--pool threads`)."""
import threading
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded

from course.jobs import tasks, workers
from course.jobs.celery_app import app
from course.jobs.thread_pool import TaskPool


class Calls:
    """What the pool hands back: accepted (thread id), the outcome, the timeouts it reported."""

    def __init__(self):
        self.accepted, self.timeouts = [], []
        self.outcome = None
        self.done = threading.Event()

    def accept(self, pid, when):
        self.accepted.append(pid)

    def finish(self, outcome):
        self.outcome = outcome
        self.done.set()

    def timeout(self, soft, seconds):
        self.timeouts.append((soft, seconds))


def started(pool, target, calls, **options):
    pool.apply_async(target, callback=calls.finish, accept_callback=calls.accept,
                     timeout_callback=calls.timeout, **options)
    deadline = time.monotonic() + 5
    while not calls.accepted:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.01)


def busy(seconds: float, seen: list | None = None):
    """A task body that sleeps in short steps (a stop lands between two), swallowing the soft limit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except SoftTimeLimitExceeded:
            seen.append("soft")
    return "finished"


@pytest.fixture
def pool():
    running = TaskPool(limit=4)
    yield running
    running.stop()


def test_terminate_job_stops_the_running_task_and_reports_it_terminated(pool):
    calls = Calls()
    started(pool, busy, calls, args=(30,))
    pool.terminate_job(calls.accepted[0], 15)
    assert calls.done.wait(2), "the task was not stopped"
    failed, info, _ = calls.outcome
    assert failed == 1 and isinstance(info.exception.exc, Terminated)


def test_the_soft_limit_raises_in_the_task_and_the_hard_limit_stops_it(pool):
    calls, seen = Calls(), []
    started(pool, busy, calls, args=(30, seen), soft_timeout=0.3, timeout=0.6)
    assert calls.done.wait(3), "the hard limit did not stop the task"
    assert seen == ["soft"]
    assert calls.timeouts == [(True, 0.3), (False, 0.6)]  # Celery logs the first, records the second
    failed, info, _ = calls.outcome
    assert failed == 1 and isinstance(info.exception.exc, TimeLimitExceeded)


def test_a_task_that_ends_in_time_gets_its_result_and_nothing_lands_later(pool):
    finished = []
    for _ in range(50):  # stops and limits aimed at tasks that have just finished
        calls = Calls()
        started(pool, lambda: "done", calls, soft_timeout=0.05, timeout=0.06)
        assert calls.done.wait(2)
        pool.terminate_job(calls.accepted[0], 15)
        finished.append(calls.outcome)
    time.sleep(0.2)  # past every deadline: the limits find nothing to stop
    assert finished == ["done"] * 50
    calls = Calls()
    started(pool, busy, calls, args=(0.3,))  # the same threads run the next task undisturbed
    assert calls.done.wait(2) and calls.outcome == "finished"


# ---- on a real worker: the course's (`--pool threads`, the `worker` fixture) -------------


def test_the_tests_worker_runs_the_course_thread_pool(worker):
    stats = app.control.inspect(destination=worker.names, timeout=2).stats()
    pool = next(iter(stats.values()))["pool"]
    assert pool["implementation"] == "course.jobs.thread_pool:TaskPool"
    assert pool["max-concurrency"] == workers.WORKER_CONCURRENCY


def test_a_revoke_with_terminate_stops_a_running_task_on_threads(worker):
    result = tasks.long_report.delay(steps=50, step_seconds=0.1)
    deadline = time.monotonic() + 10
    while result.state != "PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.02)
    result.revoke(terminate=True)
    revoked_at = time.monotonic()
    while result.state == "PROGRESS" and time.monotonic() < deadline + 5:
        time.sleep(0.02)
    assert result.state == "REVOKED" and time.monotonic() - revoked_at < 2
    time.sleep(0.5)
    assert result.state == "REVOKED"  # no later step of the task overwrote it


def test_the_soft_limit_stops_an_llm_call_that_takes_too_long(worker):
    sent = time.monotonic()
    result = tasks.ask_all.apply_async((["A question the model answers too slowly."],),
                                       {"latency": 30}, soft_time_limit=2, time_limit=4)
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=30)
    assert 1.5 < time.monotonic() - sent < 5  # the soft limit, 2 s: not the call's 30 s
    assert tasks.ask_all.delay(["Still serving?"], latency=0).get(timeout=10)["answers"]
