"""Celery beat for a lesson: run in the background for a few seconds, always stopped after.

Beat is the scheduler: it sends the tasks of `beat_schedule` when they are due, and a worker
runs them. It must run as ONE instance, or every periodic task is sent once per beat. So when
a beat already runs (the heartbeat it schedules fired a moment ago), the lesson watches that
one instead of starting a second.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import redis

from course.console import notice
from course.settings import DATA, ROOT, shown

BEAT_COMMAND = "celery -A course beat --loglevel=info"
BEAT_LOG = DATA / "beat.log"
SCHEDULE_FILE = DATA / "celerybeat-schedule"  # beat's memory of what it last sent, out of the repo
LAST_HEARTBEAT = "course:heartbeat:last"  # written by the `heartbeat` task each time it runs


def beat_already_running(client: redis.Redis, interval: float) -> bool:
    """True when the heartbeat ran within about one interval: some beat is sending it."""
    last = client.get(LAST_HEARTBEAT)
    return last is not None and time.time() - float(last) < interval + 2


@contextlib.contextmanager
def running_beat(client: redis.Redis, interval: float):
    """Beat in the background while the block runs (yields its process, or None when one
    already runs); stopped when the block ends, also on Ctrl-C or an error."""
    if beat_already_running(client, interval):
        notice("A beat is already running (the heartbeat fired a moment ago): "
               "watching it instead of starting a second one.")
        yield None
        return
    BEAT_LOG.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", *BEAT_COMMAND.split(), f"--schedule={SCHEDULE_FILE}"]
    with open(BEAT_LOG, "w") as log:
        # Its own session: Ctrl-C in the terminal reaches the lesson, which stops beat below.
        process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    notice(f"Started beat for this step (log: {shown(BEAT_LOG)}); it stops when the step "
           f"ends. To run it yourself, once: make beat  (that is: {BEAT_COMMAND})")
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (beat saves its schedule and exits), then SIGKILL if it does not."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.wait(5)
