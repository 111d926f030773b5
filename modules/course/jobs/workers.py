"""The worker: use the one that answers, start one for the lesson when none does.

A lesson waits a few seconds for a worker of yours to answer; when none does it starts one in
the background, prints the command to run your own in a second terminal, and stops it when the
lesson ends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from course.console import Stop, notice
from course.jobs.celery_app import app
from course.jobs.redis_server import ensure_redis
from course.settings import DATA, ROOT, settings

QUEUES = "high,default,low"
WORKER_COMMAND = f"celery -A course worker --loglevel=info -Q {QUEUES}"
WORKER_LOG = DATA / "worker.log"


def workers_answering(timeout: float = 1.0) -> list[str]:
    """The names of the workers that answer a ping within `timeout` seconds."""
    # A connection of its own, so one left over from before a Redis restart cannot break it.
    with app.connection_for_write() as connection:
        replies = app.control.ping(timeout=timeout, connection=connection) or []
    return sorted(name for reply in replies for name in reply)


@dataclass
class Worker:
    """A worker this lesson uses; `stop()` stops it only if the lesson started it."""

    names: list[str]
    process: subprocess.Popen | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # TERM to the main process is a warm shutdown: it finishes running tasks, stops its pool.
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)  # the pool children share its group
            self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL the worker and its children at once: a crash, for the reliability lessons."""
        if self.process is not None:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait(5)


def worker_command() -> list[str]:
    command = WORKER_COMMAND.split()
    if sys.platform == "win32":
        command.append("--pool=solo")  # prefork does not work on Windows
    # `python -m celery` is the same program as `celery`, from this interpreter's environment.
    return [sys.executable, "-m", *command]


def ensure_worker(timeout: float = 40) -> Worker:
    """A worker that answers ping: yours if one answers soon, else one started for the lesson."""
    ensure_redis()
    deadline = time.monotonic() + settings.worker_wait
    while True:
        names = workers_answering(timeout=min(1.0, settings.worker_wait))
        if names:
            return Worker(names)
        if time.monotonic() >= deadline:
            break
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(WORKER_LOG, "w") as log:
        # The environment passes through: REDIS_URL, and the lesson's OPENAI_BASE_URL.
        process = subprocess.Popen(worker_command(), cwd=ROOT, env=dict(os.environ),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    worker = Worker([], process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        worker.names = workers_answering(timeout=0.5)
        if worker.names:
            notice(f"Started a worker for this lesson (log: {WORKER_LOG.relative_to(ROOT)}); "
                   f"it stops when the lesson ends. To run your own in a second terminal: "
                   f"make worker  (that is: {WORKER_COMMAND})")
            return worker
    worker.stop()
    tail = WORKER_LOG.read_text()[-2000:] if WORKER_LOG.exists() else "(no log)"
    raise Stop(f"The worker did not come up within {timeout:g} s. "
               f"The end of {WORKER_LOG.relative_to(ROOT)}:\n{tail}")


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    if not hasattr(os, "killpg"):  # Windows: no process groups
        process.kill() if signum == signal.SIGKILL else process.terminate()
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
