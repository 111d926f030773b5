"""Shared test fixtures: a private simulator, and running a lesson as a learner does.

The suite is sealed from the learner's settings: every setting `.env.example` documents is
removed from the environment, and COURSE_ENV_FILE is empty, so the course reads no `.env`
(a key or a REDIS_URL there never reaches a test). The tests set what they need themselves.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["lesson_runs"]  # each lesson run once per test process, shared by its tests and the screen tests

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "modules"
SETTINGS = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
for name in list(os.environ):
    if name in SETTINGS or name.startswith(("OPENAI_", "SIM_", "WEBHOOK_", "FLOWER_")):
        del os.environ[name]
os.environ["COURSE_ENV_FILE"] = ""  # read no .env: in this process, lessons and workers alike
# Logs, beat's schedule and the metrics folders of this test process's own: with `make test`'s
# three processes, two runs of one lesson never write the same log (lesson 09 greps its log).
DATA = Path(tempfile.mkdtemp(prefix="course-data-"))
os.environ["COURSE_DATA"] = str(DATA)
atexit.register(shutil.rmtree, DATA, ignore_errors=True)


@pytest.fixture(scope="session")
def simulator():
    """A simulated LLM of the tests' own, fast (SIM_SPEED 20), on a free port."""
    from course.llm.simulator import launcher

    with launcher.start(speed=20) as running:
        yield running


def lesson_env(**overrides: str) -> dict[str, str]:
    """The environment a lesson runs in under test: no pausing, no real key, no .env, the tests'
    own Redis, plain output."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "SIM_", "COURSE_", "REDIS_URL"))}
    env.update(COURSE_NO_PAUSE="1", TTY_INTERACTIVE="0", PYTHONUNBUFFERED="1", COLUMNS="120",
               COURSE_ENV_FILE="", COURSE_DATA=str(DATA), REDIS_URL=TEST_REDIS_URL)
    env.update(overrides)
    return env


def run_lesson(name: str, tmp_path: Path, *args: str, timeout: float = 120,
               lesson_file: Path | None = None, **env: str):
    """Run `python modules/<name>.py --no-pause` as the README says (or an edited copy of it,
    `lesson_file`); return (process, figures)."""
    report = tmp_path / f"{name}.json"
    process = subprocess.run(
        [sys.executable, str(lesson_file or MODULES / f"{name}.py"), "--no-pause", *args],
        cwd=ROOT, env=lesson_env(COURSE_REPORT=str(report), **env),
        capture_output=True, text=True, timeout=timeout,
    )
    figures = json.loads(report.read_text()) if report.exists() else {}
    return process, figures


# ---- Redis and workers: the tests' own redis-server on a free port, real worker processes ----


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The course reads REDIS_URL once, at import: point it at the tests' own Redis before any test
# module imports `course`. WORKER_WAIT: do not wait long for a worker that is not there.
TEST_REDIS_PORT = free_port()
TEST_REDIS_URL = f"redis://127.0.0.1:{TEST_REDIS_PORT}/0"
os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ["WORKER_WAIT"] = "0.5"
# The webhook receiver on a port of the tests' own (the default allow-list follows it), and a
# signing key of this run's own, so nothing is written to .course-data/.
TEST_WEBHOOK_PORT = free_port()
os.environ["WEBHOOK_PORT"] = str(TEST_WEBHOOK_PORT)
os.environ["WEBHOOK_SECRET"] = secrets.token_hex(32)


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    """A private redis-server (append-only) for the whole test run; its folder is yielded."""
    from course.jobs import redis_server, workers

    folder = tmp_path_factory.mktemp("redis")
    redis_server.start_redis(TEST_REDIS_PORT, folder)
    yield folder
    redis_server.stop_redis(TEST_REDIS_URL, folder)


@pytest.fixture(scope="module")
def worker(private_redis, simulator):
    """A real worker process, started as the lessons start one, talking to the tests' simulator."""
    from course.jobs import redis_server, workers
    from course.jobs.celery_app import app

    app.control.purge()  # nothing left over from an earlier test runs on this worker
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", simulator.base_url)
        running = workers.ensure_worker()
    assert running.started_here, "another worker answered on the tests' private Redis"
    yield running
    running.stop()
