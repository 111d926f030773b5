"""I/O-bound Celery work: how close does a worker come to the ceiling its slots allow?

Run:  python bench/io_bound.py                      (about a minute; needs nothing running)
      python bench/io_bound.py --pool prefork        the same slots as processes
      python bench/io_bound.py --pool prefork --concurrency 2      Celery's default here

TASKS tasks, each one LLM call that the simulated LLM answers in exactly LATENCY seconds (its
x-sim-latency header), on one worker with SLOTS slots: by default the course's worker pool,
threads, ten of them. The best any worker can do is ceil(TASKS / SLOTS) waves of one latency
each (the ceiling); what it loses beyond that is Celery's overhead, the client's CPU per call,
and whatever else runs on this machine.

It starts what it needs and stops it at the end: Redis (on REDIS_URL when that is set in the
environment, else a private redis-server on a free port), the simulated LLM, and the worker, on
a queue of its own (no other worker on that Redis takes part). The worker is warmed up first,
then each run sends every task at once and waits for every result; a run is timed from the
first send to the last result. A task that fails makes the run worthless (it ended early): no
ratio is printed and the exit code is 1. The last line is machine-readable; ceiling_ratio is the
median over the runs of ideal / actual, spread the largest minus the smallest:
  ceiling_ratio=<n> spread=<n> runs=<n> pool=<name> slots=<n> tasks=<n> latency_s=<n> ...
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


import bench_redis  # noqa: E402  (first: it sets REDIS_URL before the course reads it)

from celery.result import ResultSet  # noqa: E402

from course.jobs import scaling, tasks, workers  # noqa: E402
from course.jobs.celery_app import app  # noqa: E402
from course.llm.simulator import launcher  # noqa: E402


def ceiling_s(tasks_count: int, slots: int, latency: float) -> float:
    """The best time possible: as many waves of calls as the slots allow, one latency each."""
    return math.ceil(tasks_count / slots) * latency


def one_run(queue: str, tasks_count: int, latency: float) -> tuple[float, int]:
    """(seconds from the first send to the last result, tasks that failed)."""
    started = time.perf_counter()
    sent = ResultSet([tasks.ask_all.apply_async(([f"Question {n}"],), {"latency": latency}, queue=queue)
                      for n in range(tasks_count)])
    sent.join_native(timeout=600, propagate=False)
    took = time.perf_counter() - started
    return took, sum(not result.successful() for result in sent.results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per LLM call")
    parser.add_argument("--pool", default=workers.WORKER_POOL, choices=["threads", "prefork"])
    parser.add_argument("--concurrency", type=int, default=10, help="the worker's slots")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-io-bound-"))
    bench_redis.start(folder)
    simulator = launcher.start()
    os.environ["OPENAI_BASE_URL"] = simulator.base_url  # the worker calls this simulator
    queue = f"bench-io-bound-{os.getpid()}"
    worker, runs = None, []
    try:
        worker = workers.start_worker(queue, pool=args.pool, concurrency=args.concurrency,
                                      extra=(*scaling.FAST_START, "--loglevel=warning"))
        setup = scaling.Setup(queue, [worker])
        slots = setup.slots()
        scaling.warm_up(setup)
        ideal = ceiling_s(args.tasks, slots, args.latency)
        print(f"{args.tasks} tasks of one {args.latency:g} s LLM call on --pool {args.pool} with {slots} slots: "
              f"the ceiling is {ideal:.2f} s ({args.tasks / ideal:.0f} tasks/s)", flush=True)
        for number in range(1, args.runs + 1):
            cpu = setup.cpu_seconds()
            took, failed = one_run(queue, args.tasks, args.latency)
            cpu = setup.cpu_seconds() - cpu
            runs.append({"took": took, "failed": failed, "cpu": cpu})
            print(f"  run {number}/{args.runs}: {took:.2f} s, {ideal / took:.3f} of the ceiling"
                  + (f", {failed} failed" if failed else ""), flush=True)
        memory = setup.memory_mib()
    finally:
        if worker is not None:
            worker.stop()
        app.backend.client.delete(queue)
        simulator.stop()
        bench_redis.stop(folder)

    failed = sum(run["failed"] for run in runs)
    if failed:
        print(f"failed={failed} (no ratio: a failed task ends early and would flatter it)")
        return 1
    ratios = [ideal / run["took"] for run in runs]
    took = statistics.median(run["took"] for run in runs)
    cpu_ms = statistics.median(run["cpu"] for run in runs) * 1000 / args.tasks
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"ideal={ideal:.2f}s actual={took:.2f}s (median of {len(runs)}) worker: {memory:.0f} MiB, "
          f"{cpu_ms:.2f} ms CPU per task; load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"ceiling_ratio={statistics.median(ratios):.3f} spread={max(ratios) - min(ratios):.3f} "
          f"runs={len(runs)} pool={args.pool} slots={slots} tasks={args.tasks} latency_s={args.latency:g} "
          f"tasks_per_s={args.tasks / took:.1f} worker_mib={memory:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
