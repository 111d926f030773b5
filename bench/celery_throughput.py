"""Celery end to end: the course's configuration against Celery's defaults, on this machine.

Run:  python bench/celery_throughput.py        (about a minute; needs nothing running)

It starts its own redis-server on a free port, then for each configuration one worker
(`--concurrency 2`: two prefork processes) and measures, from this process:
  - throughput: 2,000 `add` tasks sent at once, until the last result is back
  - round trip: 200 `delay()`-then-`get()` calls one after another (median and p95)
for the course's configuration, for it without task events, without extended results, without
the STARTED state, and without all three (what each part costs per task), and for Celery's
defaults.
The last line is machine-readable:
  throughput_ratio=<course/defaults> course_tasks_per_s=<n> rtt_p50_ms=<n>
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

from course.jobs import redis_server, workers
from course.jobs.celery_app import CONFIGURATION

TASKS = 2000
ROUND_TRIPS = 200
CONCURRENCY = 2
NOT_FOR_A_BENCHMARK = {"beat_schedule", "beat_schedule_filename"}


def add(x, y):
    return x + y


# What each run leaves out of the course's configuration, to show what each part costs.
EVENTS = {"task_send_sent_event", "worker_send_task_events"}
BOOKKEEPING = {"task_track_started", "result_extended"}
VARIANTS = {
    "course": set(),
    "course without events": EVENTS,
    "course without extended results": {"result_extended"},
    "course without the STARTED state": {"task_track_started"},
    "course without events, STARTED, extended results": EVENTS | BOOKKEEPING,
}


def make_app(configuration: str, url: str) -> Celery:
    """A Celery app with one task, configured like (part of) the course's app or left at Celery's defaults."""
    app = Celery("bench", broker=url, backend=url)
    if configuration in VARIANTS:
        left_out = NOT_FOR_A_BENCHMARK | VARIANTS[configuration]
        app.conf.update({name: value for name, value, _ in CONFIGURATION if name not in left_out})
    app.task(name="bench.add")(add)
    return app


# What the worker imports (`celery -A celery_throughput worker`): configured by the parent's env.
app = make_app(os.environ.get("BENCH_CONFIGURATION", "defaults"), os.environ.get("BENCH_REDIS_URL", "redis://"))


def start_worker(configuration: str, url: str) -> subprocess.Popen:
    env = dict(os.environ, BENCH_CONFIGURATION=configuration, BENCH_REDIS_URL=url,
               PYTHONPATH=str(Path(__file__).parent))
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_throughput", "worker",
         "--concurrency", str(CONCURRENCY), "--loglevel=warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(configuration: str, url: str) -> dict[str, float]:
    client = make_app(configuration, url)
    task = client.tasks["bench.add"]
    worker = start_worker(configuration, url)
    try:
        deadline = time.monotonic() + 30
        while not client.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the {configuration} worker did not start")
        for result in [task.delay(1, 1) for _ in range(20)]:  # warm-up: connections, pool processes
            result.get(timeout=30)

        started = time.perf_counter()
        results = [task.delay(n, n) for n in range(TASKS)]
        for result in results:
            result.get(timeout=120)
        throughput = TASKS / (time.perf_counter() - started)

        round_trips = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            task.delay(1, 1).get(timeout=30)
            round_trips.append((time.perf_counter() - started) * 1000)
    finally:
        worker.terminate()
        worker.wait(30)
    percentiles = statistics.quantiles(round_trips, n=20)
    return {"tasks_per_s": throughput, "rtt_p50_ms": statistics.median(round_trips), "rtt_p95_ms": percentiles[18]}


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    redis_server.start_redis(port, folder)
    try:
        figures = {configuration: measure(configuration, url) for configuration in [*VARIANTS, "defaults"]}
    finally:
        redis_server.stop_redis(url, folder)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{TASKS} tasks end to end, then {ROUND_TRIPS} sequential round trips; "
          f"one worker, {CONCURRENCY} prefork processes, private redis-server")
    print(f"{'':50} {'tasks/s':>9} {'rtt p50':>9} {'rtt p95':>9}")
    for configuration, row in figures.items():
        print(f"{configuration:50} {row['tasks_per_s']:9.0f} {row['rtt_p50_ms']:7.2f}ms {row['rtt_p95_ms']:7.2f}ms")
    course, defaults = figures["course"], figures["defaults"]
    print(f"throughput_ratio={course['tasks_per_s'] / defaults['tasks_per_s']:.2f} "
          f"course_tasks_per_s={course['tasks_per_s']:.0f} rtt_p50_ms={course['rtt_p50_ms']:.2f}")


if __name__ == "__main__":
    main()
