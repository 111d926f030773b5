"""What lesson 09 starts and stops: workers of its own, Flower behind a login, the example tests.

- `lesson_worker(queue)`: a worker on a queue of the lesson's own, so stopping or killing it
  never touches your worker or your tasks; its log is a file the lesson reads.
- `running_flower()`: Flower on a free port of 127.0.0.1 with a login made for this run.
- `run_example_tests(...)`: pytest on examples/testing_tasks/, in a process of its own.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from celery import states

from course.console import Stop, notice, waiting
from course.jobs import metrics, workers
from course.jobs.celery_app import app
from course.settings import DATA, ROOT, settings, shown

EXAMPLE_TESTS = ROOT / "examples" / "testing_tasks"


def start_lesson_worker(queue: str, *options: str) -> workers.Worker:
    """A worker that reads only `queue`, its metrics on a free port (it says which in Redis),
    its log in .course-data/<queue>.log."""
    log = DATA / f"{queue}.log"
    DATA.mkdir(exist_ok=True)
    log.write_text("")
    worker = workers.start_worker(queue, extra=(*options, f"--logfile={log}"), environment={"METRICS_PORT": "0"})
    worker.log = log
    # start_worker names every worker that answered; keep only this one (its pid says which).
    stats = app.control.inspect(destination=worker.names, timeout=2).stats() or {}
    worker.names = [name for name, info in stats.items() if info.get("pid") == worker.process.pid]
    return worker


@contextlib.contextmanager
def lesson_worker(queue: str, *options: str):
    """`with lesson_worker("lesson09") as worker:` ... stopped (warm) when the block ends."""
    worker = start_lesson_worker(queue, *options)
    try:
        yield worker
    finally:
        worker.stop()
        if worker.names:  # its address goes, even when the step killed it
            _redis().hdel(metrics.REGISTRY_KEY, *worker.names)


def _redis():
    import redis

    return redis.Redis.from_url(settings.redis_url)


def queue_length(queue: str) -> int:
    """Messages waiting in a queue (LLEN of its Redis list)."""
    return _redis().llen(queue)


def cold_shutdown(worker: workers.Worker) -> None:
    """SIGQUIT: Celery stops the tasks it runs and gives their messages back to the queue."""
    if worker.process is not None and worker.process.poll() is None:
        worker.process.send_signal(signal.SIGQUIT)


def wait_until(results, state: str = states.STARTED, count: int | None = None, seconds: float = 60) -> None:
    """Wait until `count` of these results (all by default) have reached `state` or later."""
    wanted = len(results) if count is None else count
    order = [states.PENDING, states.RECEIVED, states.STARTED, states.SUCCESS]
    deadline = time.monotonic() + seconds
    while sum(_reached(r.state, state, order) for r in results) < wanted:
        if time.monotonic() > deadline:
            raise Stop(f"Tasks did not reach {state} within {seconds:g} s: see the worker's log "
                       f"({shown(workers.WORKER_LOG)})")
        time.sleep(0.02)


def _reached(current: str, wanted: str, order: list[str]) -> bool:
    if current in states.READY_STATES or current not in order:
        return True  # PROGRESS, RETRY, or an end: past STARTED
    return order.index(current) >= order.index(wanted)


def held_unacked(task_id: str) -> bool:
    """True while Redis keeps this task's message as taken but not acknowledged (kombu's
    `unacked` hash): a worker took it and never said it was done."""
    client = _redis()
    return any(task_id.encode() in payload for payload in client.hvals("unacked"))


def forget_unacked(task_id: str) -> None:
    """Drop this task's message from the unacked hash, so it does not come back in a later run."""
    client = _redis()
    for tag, payload in client.hgetall("unacked").items():
        if task_id.encode() in payload:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def compose_file() -> dict:
    """docker-compose.yml, read."""
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def code_lines(thing) -> int:
    """Lines of code in a module (by name) or a function: no blank lines, comments or docstrings."""
    import ast
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(thing) if isinstance(thing, str) else thing)
    tree = ast.parse(source)
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            skipped.update(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in skipped)


# ---- Flower -------------------------------------------------------------------------------


@dataclass
class Flower:
    url: str
    login: tuple[str, str]  # (user, password), made for this run and never shown
    process: subprocess.Popen


@contextlib.contextmanager
def running_flower(timeout: float = 40):
    """Flower on a free port of 127.0.0.1, with a login; stopped when the block ends."""
    port = workers_free_port()
    login = ("course", secrets.token_urlsafe(12))
    command = [sys.executable, "-m", "celery", "-A", "course", "flower", "--address=127.0.0.1",
               f"--port={port}", "--enable-events"]
    DATA.mkdir(exist_ok=True)
    with open(DATA / "flower.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "FLOWER_BASIC_AUTH": ":".join(login)},
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    flower = Flower(f"http://127.0.0.1:{port}", login, process)
    try:
        with waiting(f"Starting Flower on 127.0.0.1:{port} (up to {timeout:g} s)"):
            deadline = time.monotonic() + timeout
            while status(f"{flower.url}/healthcheck") != 200:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise Stop(f"Flower did not start: see {shown(DATA / 'flower.log')}")
                time.sleep(0.2)
            _until_flower_sees_task_events(flower, deadline)
        notice(f"Started Flower for this step on {flower.url} (log: {shown(DATA / 'flower.log')}); it stops "
               "when the step ends. Your own: make flower")
        yield flower
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _until_flower_sees_task_events(flower: Flower, deadline: float) -> None:
    """Flower turns task events on in the workers every few seconds; do it now, and send a
    tiny task until Flower has counted one, so the step's own tasks are all seen."""
    from course.jobs import tasks

    app.control.enable_events()
    while time.monotonic() < deadline:
        tasks.add.delay(1, 1).get(timeout=30)
        seen = metrics.scrape(f"{flower.url}/metrics", flower.login)
        if metrics.total(seen, "flower_events_total", type="task-succeeded", task=tasks.add.name):
            return
        time.sleep(0.3)
        app.control.enable_events()
    raise Stop(f"Flower saw no task events from the workers: see {shown(DATA / 'flower.log')}")


def status(url: str, auth: tuple[str, str] | None = None) -> int | None:
    """The HTTP status `url` answers with (None when nothing answers)."""
    import base64

    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def workers_free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the example tests --------------------------------------------------------------------


def run_example_tests(*files: str, timeout: float = 120) -> list[dict]:
    """Run pytest on examples/testing_tasks/ (these files), as you would; one row per test."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.xml"
        command = [sys.executable, "-m", "pytest", *[str(EXAMPLE_TESTS / f) for f in files],
                   "-p", "no:cacheprovider", "-q", f"--junitxml={report}"]
        with waiting(f"pytest {' '.join(f'examples/testing_tasks/{f}' for f in files)}"):
            done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, REDIS_URL=settings.redis_url),
                                  capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise Stop(f"pytest did not run the example tests:\n{(done.stdout + done.stderr)[-1500:]}")
        return _read_junit(report)


def _read_junit(report: Path) -> list[dict]:
    rows = []
    for case in ElementTree.parse(report).iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        message = (problem.get("message") or "").splitlines()[0] if problem is not None else ""
        rows.append({"test": case.get("name"), "passed": problem is None, "why": message,
                     "seconds": float(case.get("time") or 0)})
    return rows
