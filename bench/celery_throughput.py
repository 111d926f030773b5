"""Celery end to end: the course's configuration against Celery's defaults, on this machine.

Run:  python bench/celery_throughput.py          (about four minutes; needs nothing running)
      python bench/celery_throughput.py --runs 5 --tasks 4000

It starts its own redis-server on a free port. Each run flushes it, then starts one worker per
variant (`--concurrency 2`: two prefork processes each), every variant on a Redis database of its
own, and measures from this process:
  - throughput: TASKS `add` tasks per variant, sent in batches of BATCH at once, each batch timed
    until its last result is back
  - round trip: `delay()`-then-`get()` calls one after another (median and p95)
  - CPU time per task: the worker, its pool, Redis and this client together (from /proc)
The variants take turns batch by batch (the course and the defaults back to back, A B then B A,
then the others), so whatever else runs on a shared machine hits all of them alike. Variants: the course's configuration, Celery's defaults,
and Celery's defaults plus one of the course's settings: what that setting costs on its own.
Each figure is the median over the runs. The last line is machine-readable; a run's ratio is the
median, over its batches, of a course batch's throughput against the defaults batch next to it;
throughput_ratio is the median of the runs' ratios, spread the largest minus the smallest:
  throughput_ratio=<n> spread=<n> runs=<n> course_tasks_per_s=<n> rtt_p50_ms=<n>
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from celery import Celery

from course.jobs import redis_server
from course.jobs.celery_app import CONFIGURATION

BATCH = 200  # tasks sent at once, then waited for
ROUND_TRIPS = 200  # per variant and run
CONCURRENCY = 2
NOT_FOR_A_BENCHMARK = {"beat_schedule", "beat_schedule_filename"}

COURSE, DEFAULTS = "course", "Celery's defaults"
# One of the course's settings (or two that go together) on top of Celery's defaults: its cost alone.
ALONE = {
    "+ task_acks_late, task_reject_on_worker_lost": {"task_acks_late": True, "task_reject_on_worker_lost": True},
    "+ worker_prefetch_multiplier=1": {"worker_prefetch_multiplier": 1},
    "+ task_track_started": {"task_track_started": True},
    "+ result_extended": {"result_extended": True},
    "+ broker_transport (the course's)": {"broker_transport": "course.jobs.redis_transport:Transport"},
    "+ the course's result backend": {"override_backends": {"redis": "course.jobs.results:CompactRedisBackend"}},
    "+ task events (off in the course)": {"worker_send_task_events": True, "task_send_sent_event": True},
}
VARIANTS = [COURSE, DEFAULTS, *ALONE]


def add(x, y):
    return x + y


def make_app(variant: str, url: str) -> Celery:
    """A Celery app with one task, configured as `variant`."""
    if variant == COURSE:  # the course's app: its configuration, task class and result backend
        app = Celery("bench", broker=url, backend=url, task_cls="course.jobs.deliveries:CourseTask")
        app.loader.override_backends = {"redis": "course.jobs.results:CompactRedisBackend"}
        app.conf.update({name: value for name, value, _ in CONFIGURATION if name not in NOT_FOR_A_BENCHMARK})
    else:
        app = Celery("bench", broker=url, backend=url)
        # Importing the course registers its transport as `redis`; the others get kombu's own.
        settings = {"broker_transport": "kombu.transport.redis:Transport", **ALONE.get(variant, {})}
        app.loader.override_backends = settings.pop("override_backends", {})
        app.conf.update(settings)
    app.task(name="bench.add")(add)
    return app


# What the worker imports (`celery -A celery_throughput worker`): configured by the parent's env.
app = make_app(os.environ.get("BENCH_VARIANT", DEFAULTS), os.environ.get("BENCH_REDIS_URL", "redis://"))


def cpu_seconds(*pids: int) -> float:
    """CPU time (user + system) used so far by these processes and their children, from /proc (Linux).

    Unlike wall time it hardly moves when other programs share the machine: a steadier cost per task.
    """
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        family = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
        for member in family:
            try:
                fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class Contender:
    """One variant in a run: its worker, on a Redis database of its own, and a client app for it."""

    def __init__(self, variant: str, url: str):
        self.variant, self.url = variant, url
        self.client = make_app(variant, url)
        self.task = self.client.tasks["bench.add"]
        env = dict(os.environ, BENCH_VARIANT=variant, BENCH_REDIS_URL=url, PYTHONPATH=str(Path(__file__).parent))
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_throughput", "worker", "--concurrency", str(CONCURRENCY),
             "--loglevel=warning", "--without-mingle", "--without-gossip"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.seconds = self.cpu = 0.0
        self.tasks = 0
        self.batch_seconds: list[float] = []
        self.round_trips: list[float] = []

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self.client.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.worker.poll() is not None:
                raise SystemExit(f"the worker for {self.variant!r} did not start")
        for result in [self.task.delay(1, 1) for _ in range(20)]:  # warm-up: connections, pool processes
            result.get(timeout=30)

    def batch(self, size: int, redis_pid: int) -> None:
        cpu_before = cpu_seconds(self.worker.pid, redis_pid) + time.process_time()
        started = time.perf_counter()
        for result in [self.task.delay(n, n) for n in range(size)]:
            result.get(timeout=120)
        self.batch_seconds.append(time.perf_counter() - started)
        self.seconds += self.batch_seconds[-1]
        self.cpu += cpu_seconds(self.worker.pid, redis_pid) + time.process_time() - cpu_before
        self.tasks += size

    def round_trip(self, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            self.task.delay(1, 1).get(timeout=30)
            self.round_trips.append((time.perf_counter() - started) * 1000)

    def stop(self) -> None:
        self.worker.terminate()
        self.worker.wait(30)

    def figures(self) -> dict[str, float]:
        return {"tasks_per_s": self.tasks / self.seconds, "cpu_ms_per_task": self.cpu * 1000 / self.tasks,
                "rtt_p50_ms": statistics.median(self.round_trips),
                "rtt_p95_ms": statistics.quantiles(self.round_trips, n=20)[18]}


def one_run(variants: list[str], port: int, redis_pid: int, tasks: int) -> dict[str, dict[str, float]]:
    redis_server.connect(f"redis://127.0.0.1:{port}/0").flushall()  # every run starts from empty databases
    contenders = [Contender(variant, f"redis://127.0.0.1:{port}/{db}") for db, variant in enumerate(variants)]
    try:
        for contender in contenders:
            contender.wait_until_ready()
        batches = max(1, tasks // BATCH)
        pair, others = contenders[:2], contenders[2:]
        for number in range(batches):
            # The course and the defaults back to back, in turns (A B, then B A); the others after
            # them, who goes first moving on each batch.
            turn = number % max(1, len(others))
            for contender in (pair if number % 2 == 0 else pair[::-1]) + others[turn:] + others[:turn]:
                contender.batch(BATCH, redis_pid)
                contender.round_trip(ROUND_TRIPS // batches)
    finally:
        for contender in contenders:
            contender.stop()
    figures = {contender.variant: contender.figures() for contender in contenders}
    # The run's ratio: the median over its batch pairs (each course batch against the defaults
    # batch next to it), so a burst of other work during one batch does not decide it.
    course, defaults = contenders[0], contenders[1]
    figures[COURSE]["ratio"] = statistics.median(
        theirs / ours for ours, theirs in zip(course.batch_seconds, defaults.batch_seconds))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (at least 3)")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per variant and run")
    parser.add_argument("--only-course", action="store_true", help="only the course and the defaults, no cost table")
    args = parser.parse_args()
    runs = max(3, args.runs)
    variants = VARIANTS[:2] if args.only_course else VARIANTS

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    redis_server.start_redis(port, folder)
    redis_pid = int((folder / "redis.pid").read_text())
    per_run: list[dict[str, dict[str, float]]] = []
    load_before = os.getloadavg()[0]
    try:
        for number in range(1, runs + 1):
            per_run.append(one_run(variants, port, redis_pid, args.tasks))
            print(f"run {number}/{runs}: course/defaults {per_run[-1][COURSE]['ratio']:.2f}", flush=True)
    finally:
        redis_server.stop_redis(f"redis://127.0.0.1:{port}/0", folder)
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()[0]

    figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in per_run:
        for variant, row in run.items():
            for name, value in row.items():
                figures[variant][name].append(value)

    def median(variant: str, name: str) -> float:
        return statistics.median(figures[variant][name])

    print(f"\n{args.tasks} tasks per variant and run in batches of {BATCH}, {ROUND_TRIPS} round trips; one worker "
          f"per variant, {CONCURRENCY} prefork processes each, one private redis-server; variants in turns batch by "
          f"batch; median of {runs} runs; load average {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} cores)")
    print("CPU ms/task: the worker, its pool, Redis and this client together; CPU cost: against the defaults'")
    print(f"{'':46} {'tasks/s':>8} {'range':>10} {'vs defaults':>12} {'CPU ms/task':>12} {'CPU cost':>9} "
          f"{'rtt p50':>9} {'rtt p95':>9}")
    defaults, defaults_cpu = median(DEFAULTS, "tasks_per_s"), median(DEFAULTS, "cpu_ms_per_task")
    for variant in variants:
        rates, cpu = figures[variant]["tasks_per_s"], median(variant, "cpu_ms_per_task")
        print(f"{variant:46} {median(variant, 'tasks_per_s'):8.0f} {min(rates):4.0f}-{max(rates):<5.0f} "
              f"{median(variant, 'tasks_per_s') / defaults:11.2f}x {cpu:12.2f} {cpu / defaults_cpu - 1:+9.0%} "
              f"{median(variant, 'rtt_p50_ms'):7.2f}ms {median(variant, 'rtt_p95_ms'):7.2f}ms")
    ratios = [run[COURSE]["ratio"] for run in per_run]
    print(f"throughput_ratio={statistics.median(ratios):.2f} spread={max(ratios) - min(ratios):.2f} runs={runs} "
          f"course_tasks_per_s={median(COURSE, 'tasks_per_s'):.0f} rtt_p50_ms={median(COURSE, 'rtt_p50_ms'):.2f}")


if __name__ == "__main__":
    main()
