"""One worker command for the course (workers.WORKER_COMMAND): `make worker` runs it, the compose
stack runs it (test_compose.py), the lessons print it and start it, and it starts the thread pool
lesson 08 recommends for LLM work."""
import os
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT, TEST_REDIS_URL
from course.jobs import workers
from course.jobs.celery_app import app


def test_the_course_worker_is_the_thread_pool_lesson_08_recommends():
    assert workers.WORKER_COMMAND == ("celery -A course worker --loglevel=info -Q high,default,low "
                                      "--pool threads --concurrency 20")


def test_make_worker_runs_the_workers_module_after_starting_redis():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^worker:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    lines = [line.strip().lstrip("@") for line in recipe.splitlines()]
    assert lines[0].startswith("$(BIN)/python -m course.jobs.redis_server start-redis")
    assert lines[1] == "$(BIN)/python -m course.jobs.workers"


def test_the_workers_module_prints_the_command_and_starts_that_worker(private_redis, simulator):
    env = {**os.environ, "REDIS_URL": TEST_REDIS_URL, "OPENAI_BASE_URL": simulator.base_url}
    process = subprocess.Popen([sys.executable, "-m", "course.jobs.workers"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        assert process.stdout.readline().strip() == workers.WORKER_COMMAND
        deadline = time.monotonic() + 40
        while not (names := workers.workers_answering(timeout=0.5)):
            assert time.monotonic() < deadline and process.poll() is None, "the worker did not start"
        stats = app.control.inspect(destination=names, timeout=2).stats()
        (pool,) = [info["pool"] for info in stats.values()]
        assert pool["implementation"] == "course.jobs.thread_pool:TaskPool"
        assert pool["max-concurrency"] == workers.WORKER_CONCURRENCY == 20
        assert workers.queues_consumed(names)[names[0]] == ["default", "high", "low"]
        assert process.pid == int(stats[names[0]]["pid"])  # the module became the worker (exec)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
