"""Lesson 09's LLM job on RQ, the lighter queue: the same Redis, the same function as Celery's.

    from course.jobs.rq_tasks import QUEUE_NAME, queue
    job = queue().enqueue(summarise, text, retry=Retry(max=3, interval=[1, 2, 4]))
    job.latest_result(timeout=60).return_value

Run a worker (second terminal):  make rq-worker   (that is: rq worker -c course.jobs.rq_tasks -S json)
This module is also that worker's settings file: RQ reads REDIS_URL and QUEUES from it, and
importing it loads the job's code once in the worker, before it forks a process per job.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from course.console import Stop
from course.jobs.llm_job import summarise  # noqa: F401  (loaded here for the worker)
from course.settings import DATA, ROOT, settings, shown

REDIS_URL = settings.redis_url
QUEUE_NAME = "course-rq"
QUEUES = [QUEUE_NAME]
WORKER_COMMAND = "rq worker -c course.jobs.rq_tasks -S json"


def queue() -> Queue:
    """The RQ queue on the course's Redis; JSON, like the Celery side (no pickles)."""
    return Queue(QUEUE_NAME, connection=Redis.from_url(REDIS_URL), serializer=JSONSerializer)


@contextlib.contextmanager
def rq_workers(count: int, timeout: float = 30):
    """`count` RQ workers in the background while the block runs; stopped after it."""
    from rq import Worker

    from course import llm

    llm.ensure_endpoint()  # the workers inherit OPENAI_BASE_URL: every job calls the same LLM
    rq = str(Path(sys.executable).with_name("rq"))
    DATA.mkdir(exist_ok=True)
    processes = []
    try:
        for number in range(1, count + 1):
            log = open(DATA / f"rq-worker-{number}.log", "w")
            processes.append(subprocess.Popen(
                [rq, *WORKER_COMMAND.split()[1:], "-n", f"course-rq-{os.getpid()}-{number}"],
                cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))
            log.close()
        deadline = time.monotonic() + timeout
        while len(Worker.all(queue=queue())) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise Stop(f"The RQ workers did not start within {timeout:g} s: "
                           f"see {shown(DATA / 'rq-worker-1.log')}")
            time.sleep(0.1)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # RQ's warm shutdown: the current job finishes
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
