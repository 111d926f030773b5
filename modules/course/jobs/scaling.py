"""What lesson 08 starts and measures: workers with a given pool, on a queue of their own.

    with running_workers("threads", concurrency=10) as setup:
        sent = [tasks.ask_all.apply_async(..., queue=setup.queue) for ...]
        setup.memory_mib()     # the PSS of every process of its workers, in MiB
        setup.cpu_seconds()    # the CPU time they used so far

A setup's workers read a queue nobody else reads (lesson08-<pid>-<n>): a worker of yours on the
same Redis never takes part, and they never take your tasks. They talk to the lesson's LLM (the
simulator, started once for all of them), are warmed up before the block runs (each process has
made its first call: its client and connections exist), and stop when it ends.

Memory and CPU time come from /proc (Linux); elsewhere from `ps`, where memory is the resident
size (no PSS) and CPU time is coarser.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from course.jobs import tasks
from course.jobs.celery_app import app
from course.jobs.redis_server import ensure_redis
from course.jobs.workers import Worker, start_worker

FAST_START = ("--without-mingle", "--without-gossip", "--without-heartbeat")  # nothing to sync here
_setups = itertools.count(1)


@dataclass
class Setup:
    """The workers of one measurement, and the queue they read."""

    queue: str
    workers: list[Worker]

    @property
    def names(self) -> list[str]:
        return [name for worker in self.workers for name in worker.names]

    def slots(self) -> int:
        """Tasks the workers run at once, as they report it (inspect stats: max-concurrency)."""
        stats = app.control.inspect(destination=self.names, timeout=2).stats() or {}
        return sum(info["pool"]["max-concurrency"] for info in stats.values())

    def processes(self) -> dict[int, list[int]]:
        """{worker's main pid: the pids of its pool processes} (none for threads)."""
        return {worker.process.pid: children_of(worker.process.pid) for worker in self.workers}

    def pids(self) -> list[int]:
        return [pid for main, children in self.processes().items() for pid in (main, *children)]

    def memory_mib(self) -> float:
        """Proportional set size of every process, summed: pages shared by several processes
        count in part, so the sum is what the setup really holds."""
        return sum(memory_mib(pid)["pss"] for pid in self.pids())

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())


@contextlib.contextmanager
def running_workers(pool: str = "prefork", concurrency: int | None = None, count: int = 1,
                    options: tuple[str, ...] = (), warm: bool = True):
    """`count` workers with this pool on a queue of their own; Celery's default concurrency
    (one process per CPU) when `concurrency` is None. Stopped (warm) when the block ends."""
    from course import llm

    ensure_redis()
    llm.ensure_endpoint()  # one LLM for every worker: they inherit OPENAI_BASE_URL
    queue = f"lesson08-{os.getpid()}-{next(_setups)}"
    setup = Setup(queue, [])
    try:
        for _ in range(count):
            setup.workers.append(start_worker(queue, extra=(*FAST_START, *options),
                                              pool=pool, concurrency=concurrency))
        if warm:
            warm_up(setup)
        yield setup
    finally:
        for worker in setup.workers:
            worker.stop()
        app.backend.client.delete(queue)  # nothing left for a later run


def warm_up(setup: Setup) -> None:
    """Two quick tasks per slot, so each process has made its first LLM call."""
    sent = [tasks.ask_all.apply_async((["Warm up."],), {"latency": 0}, queue=setup.queue)
            for _ in range(2 * setup.slots())]
    for result in sent:
        result.get(timeout=120)


# ---- processes, read from /proc (Linux), else from ps ---------------------------------


def children_of(pid: int) -> list[int]:
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    if listing.exists():
        return [int(child) for child in listing.read_text().split()]
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def memory_mib(pid: int) -> dict[str, float]:
    """{"rss": resident size, "pss": proportional share} of one process, in MiB."""
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        fields = dict(line.split(":", 1) for line in rollup.read_text().splitlines()[1:])
        rss, pss = (int(fields[name].split()[0]) / 1024 for name in ("Rss", "Pss"))
        return {"rss": rss, "pss": pss}
    found = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    rss = int(found.stdout.strip() or 0) / 1024
    return {"rss": rss, "pss": rss}  # no PSS outside Linux: the resident size overcounts


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    found = subprocess.run(["ps", "-o", "time=", "-p", str(pid)], capture_output=True, text=True)
    return ps_time_seconds(found.stdout)


def ps_time_seconds(text: str) -> float:
    """`ps -o time=` as seconds: [dd-][hh:]mm:ss[.cc]."""
    days, _, clock = text.strip().rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part or 0)
    return seconds + 86400 * int(days or 0)
