"""The worker: use the ones that answer, start one for the lesson when none does.

A lesson waits a few seconds for a worker of yours to answer. When none does, or when yours
leave a course queue unread, it starts one in the background (for the missing queues), prints
the command to run your own in a second terminal, and stops it when the lesson ends.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course.console import Stop, notice, waiting
from course.jobs.celery_app import app
from course.jobs.redis_server import ensure_redis
from course.settings import DATA, ROOT, settings, shown

QUEUES = "high,default,low"
# The course's worker, the one lesson 08 recommends for LLM work: tasks that wait on the network
# run on threads, twenty at a time, in one process (see celery_app.py for what the course's
# thread pool adds to Celery's). `make worker`, docker-compose.yml and the lessons all run this.
WORKER_POOL = "threads"
WORKER_CONCURRENCY = 20
BASE_COMMAND = "celery -A course worker --loglevel=info"
WORKER_COMMAND = f"{BASE_COMMAND} -Q {QUEUES} --pool {WORKER_POOL} --concurrency {WORKER_CONCURRENCY}"
WORKER_LOG = DATA / "worker.log"
_started = itertools.count(1)  # workers this process started: each gets a node name of its own


def workers_answering(timeout: float = 1.0) -> list[str]:
    """The names of the workers that answer a ping within `timeout` seconds."""
    # A connection of its own, so one left over from before a Redis restart cannot break it.
    with app.connection_for_write() as connection:
        replies = app.control.ping(timeout=timeout, connection=connection) or []
    return sorted(name for reply in replies for name in reply)


def queues_consumed(names: list[str], timeout: float = 1.0) -> dict[str, list[str]]:
    """{worker name: the queues it consumes}, for the workers named."""
    with app.connection_for_write() as connection:
        found = app.control.inspect(destination=names, timeout=timeout, connection=connection).active_queues()
    return {name: sorted(queue["name"] for queue in queues) for name, queues in (found or {}).items()}


@dataclass
class Worker:
    """The workers a lesson uses; `stop()` stops the one the lesson started, if any."""

    names: list[str]
    process: subprocess.Popen | None = None
    log: Path | None = None

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


def worker_command(queues: str = QUEUES, name: str | None = None, extra: tuple[str, ...] = (),
                   pool: str | None = None, concurrency: int | None = None) -> list[str]:
    """`celery -A course worker` on `queues`; Celery's own pool and concurrency unless given."""
    command = [*BASE_COMMAND.split(), "-Q", queues]
    if pool:
        command += ["--pool", pool]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    command += extra
    if name:
        command += ["-n", name]
    explicit = pool or any(arg.startswith(("--pool", "-P")) for arg in extra)
    if sys.platform == "win32" and (not explicit or pool == "prefork"):
        command.append("--pool=solo")  # prefork does not work on Windows
    # `python -m celery` is the same program as `celery`, from this interpreter's environment.
    return [sys.executable, "-m", *command]


def start_worker(queues: str = QUEUES, extra: tuple[str, ...] = (), timeout: float = 40,
                 pool: str | None = None, concurrency: int | None = None,
                 environment: dict[str, str] | None = None) -> Worker:
    """Start a worker in the background on `queues` and wait until it answers ping.

    Celery's default pool (prefork, one process per CPU) unless `pool` / `concurrency` say
    otherwise; ensure_worker() starts the course's worker (WORKER_POOL, WORKER_CONCURRENCY).
    `environment` adds variables for this worker only (a short visibility timeout, say).

    Its node name, lesson-<pid>@<host> (then -2, -3 ...), differs from your own worker's
    (celery@<host>), so both can run at once.
    """
    number = next(_started)
    node = f"lesson-{os.getpid()}" + (f"-{number}" if number > 1 else "")
    log_path = WORKER_LOG if number == 1 else WORKER_LOG.with_name(f"worker-{number}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        # The environment passes through: REDIS_URL, and the lesson's OPENAI_BASE_URL.
        process = subprocess.Popen(worker_command(queues, f"{node}@%h", extra, pool, concurrency),
                                   cwd=ROOT, env={**os.environ, **(environment or {})},
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    worker = Worker([], process, log_path)
    deadline = time.monotonic() + timeout
    with waiting(f"Starting a worker on {queues} (up to {timeout:g} s)"):
        while time.monotonic() < deadline and process.poll() is None:
            answering = workers_answering(timeout=0.5)
            if any(name.startswith(f"{node}@") for name in answering):
                worker.names = answering
                return worker
    worker.stop()
    tail = log_path.read_text()[-2000:] if log_path.exists() else "(no log)"
    raise Stop(f"The worker did not come up within {timeout:g} s. "
               f"The end of {shown(log_path)}:\n{tail}")


def ensure_worker(timeout: float = 40) -> Worker:
    """Workers that answer ping and together consume every course queue.

    Yours if they answer within WORKER_WAIT seconds and read all of high, default and low;
    otherwise one started for the lesson, on the queues yours leave unread.
    """
    ensure_redis()
    wait = settings.worker_wait
    deadline = time.monotonic() + wait
    with waiting(f"Looking for a worker of yours (up to {wait:g} s)"):
        while True:
            names = workers_answering(timeout=min(1.0, wait))
            if names or time.monotonic() >= deadline:
                break
    missing = QUEUES.split(",")
    if names:
        consumed = queues_consumed(names)
        missing = [queue for queue in missing if not any(queue in queues for queues in consumed.values())]
        if not missing:
            return Worker(names)
        who = "; ".join(f"{name} consumes {', '.join(queues) or 'nothing'}" for name, queues in consumed.items())
        notice(f"No worker of yours consumes the queue(s) {', '.join(missing)} ({who}): a task sent there "
               f"would wait forever. Starting a worker for this lesson on {', '.join(missing)}.")
    worker = start_worker(",".join(missing), timeout=timeout, pool=WORKER_POOL, concurrency=WORKER_CONCURRENCY)
    notice(f"Started a worker for this lesson (log: {shown(worker.log)}); "
           f"it stops when the lesson ends. To run your own in a second terminal: "
           f"make worker  (that is: {WORKER_COMMAND})")
    return worker


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    if not hasattr(os, "killpg"):  # Windows: no process groups
        process.kill() if signum == signal.SIGKILL else process.terminate()
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run_course_worker() -> None:
    """`make worker`: the course's worker in the foreground (this process becomes celery)."""
    command = worker_command(pool=WORKER_POOL, concurrency=WORKER_CONCURRENCY)
    print(" ".join(command[2:]), flush=True)  # what runs: celery -A course worker ...
    os.execv(command[0], command)


if __name__ == "__main__":
    run_course_worker()
