"""bench/faults.py, reduced (--quick): under the course's configuration no crash loses or doubles a
task, while Celery's defaults, on the same faults, do lose and double some: the faults were real."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TEST_REDIS_URL, free_port, lesson_env

ROW = re.compile(r"(course|Celery defaults): .*?\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(?:[\d.]+ s|–)$")


def run_bench(*args: str, redis_url: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "faults.py"), *args], cwd=ROOT,
                          env=lesson_env(REDIS_URL=redis_url), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def table():
    """The quick bench on a Redis of its own, at a free port REDIS_URL names: its rows, in order."""
    run = run_bench("--quick", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [dict(zip(("config", "sent", "completed", "kept", "held", "lost", "twice"),
                     (found[0], *map(int, found[1:]))))
            for found in (ROW.search(line).groups() for line in run.stdout.splitlines() if ROW.search(line))]
    return run.stdout, rows


def test_the_course_loses_nothing_and_runs_nothing_twice(table):
    output, rows = table
    assert output.strip().splitlines()[-1] == "lost=0 duplicates=0"
    course = [row for row in rows if row["config"] == "course"]
    assert len(course) == 6
    assert all(row["lost"] == row["held"] == row["twice"] == 0 for row in course), course
    assert all(row["completed"] + row["kept"] == row["sent"] for row in course), course
    poison = course[2]
    assert (poison["sent"], poison["kept"]) == (1, 1)  # the poison task, in the dead letter store
    assert "ran 3 times, then FAILURE, kept in the dead letter store" in output


def test_celery_defaults_lose_and_double_tasks_on_the_same_faults(table):
    _, rows = table
    defaults = [row for row in rows if row["config"] == "Celery defaults"]
    killed, child, poison, countdown, redis_down, errors = defaults
    assert killed["lost"] >= 1 and killed["completed"] < killed["sent"]  # the running ones, acked early
    assert child["lost"] >= 1 and poison["lost"] == 1
    assert countdown["twice"] == countdown["sent"]  # every task ran on both workers
    assert redis_down["lost"] == redis_down["sent"]  # no persistence: queue and results gone
    assert errors["lost"] > 0  # no retries at a 30% error rate


def test_the_bench_refuses_a_redis_that_answers_and_leaves_it_alone(private_redis):
    from course.jobs import redis_server

    client = redis_server.connect(TEST_REDIS_URL)
    client.set("faults-bench-canary", "still here")
    run = run_bench("--quick", redis_url=TEST_REDIS_URL, timeout=60)
    assert run.returncode != 0 and "wants a free port" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert client.get("faults-bench-canary") == b"still here"
