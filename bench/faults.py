"""Proof that nothing is lost: crashes and faults, the course's configuration next to Celery's defaults.

Run:  python bench/faults.py             (about four minutes; needs nothing running)
      python bench/faults.py --quick     (fewer tasks; what the tests run)
      python bench/faults.py --only worker-killed,poison

It starts what it needs on 127.0.0.1: its own redis-server on a free port (or on the port of
REDIS_URL, which must then be free: the bench kills and flushes its Redis, so it never uses one
that already answers), the course's simulated LLM, and real Celery workers, which it kills.
The course's rows run the course's app (`celery -A course worker`, its tasks and configuration);
Celery's rows run an app with Celery's defaults and the same work (this file, `-A faults`).

Scenarios: a worker killed with SIGKILL mid LLM tasks (a new worker started at once); one pool
process killed mid-task; the poison task (it kills its process every time); a countdown longer
than the visibility timeout; Redis killed with SIGKILL and restarted, with tasks queued and
results stored; LLM calls against a 30% error rate and a requests-per-minute limit.

Columns: sent; completed (at least once); kept (failed for good and kept in the dead letter
store, to inspect and replay: not lost); held (still unacknowledged in Redis when the scenario
ends: back only after the visibility timeout); lost (none of these); ran twice (completed more
than once); recovery (from the fault until the last task completed). The last line sums the course's rows,
and both must be 0:
  lost=<n> duplicates=<n>
"""
from __future__ import annotations

import os
import signal
import time

import redis
from celery import Celery

QUEUE = "faults"
RUNS, COMPLETED = "course:runs:{}", "course:completed:{}"  # the keys the course's tasks count in


# ---- Celery's defaults: the app the `-A faults` workers run, and its tasks ------------------


def defaults_app(url: str, visibility_timeout: str | None = None) -> Celery:
    """Celery's defaults (JSON only, as the course), with the same work as the course's tasks.
    `visibility_timeout`: the one setting the countdown scenario changes (Celery's: 1 h)."""
    app = Celery("faults", broker=url, backend=url)
    app.conf.update(task_default_queue=QUEUE, task_serializer="json", accept_content=["json"],
                    result_serializer="json")
    if visibility_timeout:
        app.conf.broker_transport_options = {"visibility_timeout": float(visibility_timeout)}

    def counter() -> redis.Redis:
        return redis.Redis.from_url(url)

    @app.task(bind=True, name="faults.llm_call", shared=False)
    def llm_call(self, prompt, seconds=None):
        """One LLM call, no retries (Celery's default): counts its runs and completions."""
        from openai import OpenAI

        counter().incr(RUNS.format(self.request.id))
        client = OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="not-needed", max_retries=0)
        headers = {"x-sim-latency": str(seconds)} if seconds is not None else {}
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=20, extra_headers=headers,
                                       messages=[{"role": "user", "content": prompt}])
        return counter().incr(COMPLETED.format(self.request.id))

    @app.task(bind=True, name="faults.crash", shared=False)
    def crash(self):
        counter().incr(RUNS.format(self.request.id))
        os._exit(1)

    return app


if os.environ.get("BENCH_FAULTS_URL"):  # inside a `celery -A faults worker`
    app = defaults_app(os.environ["BENCH_FAULTS_URL"], os.environ.get("BENCH_FAULTS_VISIBILITY_TIMEOUT"))


# ---- what the bench process runs -------------------------------------------------------------

if __name__ == "__main__":
    import argparse
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    from dataclasses import dataclass, field
    from pathlib import Path
    from urllib.parse import urlsplit

    HERE = Path(__file__).resolve().parent
    ROOT = HERE.parent
    COURSE, DEFAULTS = "course", "Celery's defaults"
    VT = 10  # the visibility timeout of the course's rows (CELERY_VISIBILITY_TIMEOUT), seconds

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def chosen_port() -> int:
        """REDIS_URL's port when it is set and free, else a free port; never a Redis that answers."""
        url = os.environ.get("REDIS_URL", "").strip()
        if not url:
            return free_port()
        parts = urlsplit(url)
        port = parts.port or 6379
        if parts.hostname not in ("127.0.0.1", "localhost"):
            sys.exit(f"REDIS_URL points at {parts.hostname}: the bench starts and kills its own Redis on "
                     "127.0.0.1. Unset REDIS_URL, or set it to a free local port.")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"Something answers on 127.0.0.1:{port}. The bench kills and flushes its Redis, so it "
                         "wants a free port: unset REDIS_URL (a free port is picked) or name a free one.")
        return port

    PORT = chosen_port()
    URL = f"redis://127.0.0.1:{PORT}/0"  # the course's app; Celery's defaults use /1
    # Settings before `course` is imported (it reads them once): this Redis, no learner's .env.
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "SIM_")) or name in ("CELERY_VISIBILITY_TIMEOUT", "MAX_DELIVERIES"):
            del os.environ[name]
    os.environ.update(REDIS_URL=URL, COURSE_ENV_FILE="", CELERY_VISIBILITY_TIMEOUT=str(VT))

    from course.jobs import dead_letters, redis_server, tasks  # noqa: E402
    from course.jobs.celery_app import LONGEST_COUNTDOWN  # noqa: E402
    from course.jobs.deliveries import DelayTooLong  # noqa: E402
    from course.llm.simulator import launcher  # noqa: E402
    from course.settings import settings  # noqa: E402

    LOGS = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    WORKERS: list[subprocess.Popen] = []  # every worker this run started, and every redis-server
    SERVERS: list[tuple[int, int]] = []  # (pid, port): whatever a failed scenario left is stopped at the end

    def start_redis(port: int, folder: Path, persistence: bool) -> int:
        """A redis-server on 127.0.0.1:port; with persistence, an append-only file synced on every write."""
        keep = ["--appendonly", "yes", "--appendfsync", "always"] if persistence else ["--appendonly", "no"]
        subprocess.run([redis_server.redis_binary(), "--port", str(port), "--bind", "127.0.0.1",
                        "--daemonize", "yes", "--dir", str(folder), "--pidfile", str(folder / "redis.pid"),
                        "--logfile", str(folder / "redis.log"), "--save", "", *keep], check=True)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while redis_server.redis_problem(url):
            if time.monotonic() > deadline:
                sys.exit(f"redis-server did not start on port {port}: {folder / 'redis.log'}")
            time.sleep(0.05)
        pid = int((folder / "redis.pid").read_text())
        SERVERS.append((pid, port))
        return pid

    def kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @dataclass
    class Variant:
        """One configuration under test: its Redis URL, how to send its tasks, how to start workers."""

        name: str
        url: str
        visibility_timeout: float
        workers: list = field(default_factory=list)

        @property
        def store(self) -> redis.Redis:
            if not hasattr(self, "_store"):
                self._store = redis.Redis.from_url(self.url)
            return self._store

        def start_worker(self, visibility_timeout: float | None = None, concurrency: int = 2,
                         llm: str | None = None) -> subprocess.Popen:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BENCH_"))}
            env.update(OPENAI_BASE_URL=llm or SIMULATOR.base_url, COURSE_ENV_FILE="", PYTHONUNBUFFERED="1")
            node = f"{'course' if self.name == COURSE else 'defaults'}-{len(self.workers) + 1}-{os.getpid()}@%h"
            common = ["-Q", QUEUE, "-n", node, "--pool", "prefork", "--concurrency", str(concurrency),
                      "--loglevel=info", "--without-mingle", "--without-gossip"]
            if self.name == COURSE:
                env.update(REDIS_URL=self.url,
                           CELERY_VISIBILITY_TIMEOUT=str(visibility_timeout or self.visibility_timeout))
                command = [sys.executable, "-m", "celery", "-A", "course", "worker", *common]
            else:
                env.update(BENCH_FAULTS_URL=self.url, PYTHONPATH=str(HERE))
                command = [sys.executable, "-m", "celery", "-A", "faults", "worker", *common]
                if visibility_timeout:  # the naive setting of the countdown scenario
                    env["BENCH_FAULTS_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
            log = open(LOGS / f"{node.split('@')[0]}.log", "w")
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            self.workers.append(process)
            WORKERS.append(process)
            self.wait_for_worker(node.split("@")[0], process)
            return process

        def wait_for_worker(self, node: str, process: subprocess.Popen) -> None:
            app = self.client_app()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                with app.connection_for_write() as connection:  # never one from before a Redis restart
                    answers = app.control.ping(timeout=0.5, connection=connection) or []
                if any(name.startswith(node + "@") for reply in answers for name in reply):
                    return
            sys.exit(f"a worker ({self.name}) did not start; its log: {LOGS}")

        def client_app(self) -> Celery:
            if self.name == COURSE:
                from course.jobs.celery_app import app as course_app

                return course_app
            if not hasattr(self, "_app"):
                self._app = defaults_app(self.url)
            return self._app

        def send_llm(self, prompt: str, seconds: float | None = None, **options):
            if self.name == COURSE:
                return tasks.counted_llm_call.apply_async((prompt, seconds), queue=QUEUE, **options)
            return self.client_app().tasks["faults.llm_call"].apply_async((prompt, seconds), queue=QUEUE,
                                                                         **options)

        def send_crash(self):
            if self.name == COURSE:
                return tasks.crash_worker_process.apply_async(queue=QUEUE)
            return self.client_app().tasks["faults.crash"].apply_async(queue=QUEUE)

        def runs(self, task_id: str) -> int:
            return int(self.store.get(RUNS.format(task_id)) or 0)

        def completions(self, task_id: str) -> int:
            return int(self.store.get(COMPLETED.format(task_id)) or 0)

        def kept(self, task_id: str) -> bool:
            return self.name == COURSE and dead_letters.get(task_id) is not None

        def stop_workers(self) -> None:
            for process in self.workers:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in self.workers:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
            self.workers.clear()

    @dataclass
    class Row:
        scenario: str
        configuration: str
        variant: str
        sent: int
        completed: int
        kept: int
        twice: int
        recovery: float | None
        note: str = ""
        held: int = 0

        @property
        def lost(self) -> int:
            return self.sent - self.completed - self.kept - self.held

    def outcome(variant: Variant, ids: list[str]) -> tuple[int, int, int]:
        """(completed, kept, ran twice) for these task ids."""
        completions = [variant.completions(task_id) for task_id in ids]
        return (sum(c >= 1 for c in completions), sum(variant.kept(task_id) for task_id in ids),
                sum(c >= 2 for c in completions))

    def wait(condition, seconds: float, every: float = 0.05) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(every)
        return True

    def settle(variant: Variant, ids: list[str], seconds: float) -> float | None:
        """Wait until every task completed (returns when), or until nothing moves for 3 s or
        `seconds` pass (returns None)."""
        deadline, last_change, last = time.monotonic() + seconds, time.monotonic(), None
        while time.monotonic() < deadline:
            now = [variant.completions(task_id) for task_id in ids]
            if all(now):
                return time.monotonic()
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > 3 and variant.name != COURSE:
                return None  # Celery's defaults: nothing more will come back within the hour
            time.sleep(0.1)
        return None

    def pool_children(process: subprocess.Popen) -> list[int]:
        path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    # ---- the scenarios ----------------------------------------------------------------------

    def worker_killed(variant: Variant, count: int) -> Row:
        """SIGKILL a worker (and its pool) while it runs LLM tasks; start a new one at once."""
        worker = variant.start_worker()
        ids = [variant.send_llm(f"Question {n}", 1.0).id for n in range(count)]
        wait(lambda: sum(variant.runs(task_id) > 0 for task_id in ids) >= 2, 30)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)
        killed = time.monotonic()
        variant.start_worker()
        done = settle(variant, ids, VT + 40)
        completed, kept, twice = outcome(variant, ids)
        held = variant.store.hlen("unacked")  # prefetched by the killed worker, never started
        variant.stop_workers()
        note = "" if variant.name == COURSE else (
            f"{held} prefetched by the killed worker wait unacknowledged in Redis until the visibility timeout "
            f"(1 h); the {count - completed - held} it was running were acknowledged at their start: gone")
        return Row("worker SIGKILLed mid-task", f"acks late, visibility timeout {VT:g} s" if variant.name == COURSE
                   else "acks early, visibility timeout 1 h", variant.name, count, completed, kept, twice,
                   done - killed if done else None, note, held)

    def child_killed(variant: Variant, count: int) -> Row:
        """SIGKILL one pool process while its task runs; the worker itself lives on."""
        worker = variant.start_worker()
        ids = [variant.send_llm(f"Question {n}", 1.0).id for n in range(count)]
        wait(lambda: sum(variant.runs(task_id) > 0 for task_id in ids) >= 2, 30)
        kill(pool_children(worker)[0])
        killed = time.monotonic()
        done = settle(variant, ids, 30)
        completed, kept, twice = outcome(variant, ids)
        variant.stop_workers()
        return Row("one pool process SIGKILLed", "acks late, reject on worker lost" if variant.name == COURSE
                   else "acks early", variant.name, count, completed, kept, twice,
                   done - killed if done else None,
                   "" if variant.name == COURSE else "the killed task failed with WorkerLostError")

    def poison(variant: Variant) -> Row:
        """A task that kills the process running it, every time it runs."""
        variant.start_worker()
        sent = time.monotonic()
        result = variant.send_crash()
        wait(lambda: result.state == "FAILURE", 60)
        if variant.name == COURSE:
            wait(lambda: variant.kept(result.id), 5)
        ended = time.monotonic()
        time.sleep(2)  # would it run again?
        runs = variant.runs(result.id)
        variant.stop_workers()
        kept = int(variant.kept(result.id))
        return Row("poison task (kills its process)", f"deliveries counted, MAX_DELIVERIES={settings.max_deliveries}"
                   if variant.name == COURSE else "acks early", variant.name, 1, 0, kept, 0,
                   ended - sent if kept else None, f"ran {runs} time{'s' if runs > 1 else ''}, then " + ("FAILURE, kept in the dead letter store" if kept
                                                    else "FAILURE (WorkerLostError), nothing to replay"))

    def long_countdown(variant: Variant, count: int) -> Row:
        """Countdowns past the visibility timeout; a second worker starts once it has passed."""
        countdown = VT + 5
        if variant.name == COURSE:
            refused = 0
            for _ in range(count):
                try:
                    variant.send_llm("Later", countdown=countdown)
                except DelayTooLong:
                    refused += 1
            variant.start_worker()
            ids = [variant.send_llm("Later", countdown=LONGEST_COUNTDOWN).id for _ in range(count)]
            time.sleep(VT + 1)
            variant.start_worker()  # restores what waited unacknowledged past the visibility timeout
            settle(variant, ids, 30)
            time.sleep(3)  # a second copy would have run by now
            completed, kept, twice = outcome(variant, ids)
            variant.stop_workers()
            return Row("countdown longer than the visibility timeout",
                       f"countdown {countdown} s refused; {LONGEST_COUNTDOWN:g} s allowed", variant.name,
                       count, completed, kept, twice, None,
                       f"{refused} of {count} sends with countdown={countdown} s refused at once (DelayTooLong); "
                       f"{count} sent with countdown={LONGEST_COUNTDOWN:g} s")
        variant.start_worker(visibility_timeout=VT)
        ids = [variant.send_llm("Later", countdown=countdown).id for _ in range(count)]
        time.sleep(VT + 1)
        variant.start_worker(visibility_timeout=VT)
        settle(variant, ids, countdown + 10)
        time.sleep(3)
        completed, kept, twice = outcome(variant, ids)
        variant.stop_workers()
        return Row("countdown longer than the visibility timeout",
                   f"visibility timeout {VT} s, countdown {countdown} s", variant.name, count, completed, kept,
                   twice, None, "each worker held a copy until its countdown")

    def redis_killed(variant: Variant, folder: Path, pid: int, count: int) -> tuple[Row, int]:
        """Tasks queued and results stored; SIGKILL Redis, restart it from its files, then a worker."""
        variant.start_worker()
        stored = [variant.send_llm(f"Stored {n}") for n in range(count)]
        for result in stored:
            result.get(timeout=60)
        variant.stop_workers()
        queued = [variant.send_llm(f"Queued {n}").id for n in range(count)]
        kill(pid)
        time.sleep(0.5)
        killed = time.monotonic()
        pid = start_redis(urlsplit(variant.url).port, folder, persistence=variant.name == COURSE)
        results_left = sum(variant.client_app().AsyncResult(r.id).state == "SUCCESS" for r in stored)
        variant.start_worker()
        done = settle(variant, queued, 30)
        completed, kept, twice = outcome(variant, queued)
        variant.stop_workers()
        row = Row("Redis SIGKILLed and restarted", "append-only file, fsync on every write"
                  if variant.name == COURSE else "Redis without persistence", variant.name,
                  2 * count, completed + results_left, kept, twice, done - killed if done else None,
                  f"{count} queued tasks: {completed} ran after the restart; "
                  f"{count} stored results: {results_left} still there")
        return row, pid

    def llm_errors(variant: Variant, count: int, llm: str) -> Row:
        """LLM calls against a 30% error rate and a requests-per-minute limit."""
        variant.start_worker(visibility_timeout=300, llm=llm)  # the course's own: a 150 s retry budget
        started = time.monotonic()
        results = [variant.send_llm(f"Question {n}: say hello") for n in range(count)]
        for result in results:
            result.get(timeout=300, propagate=False)
        took = time.monotonic() - started
        ids = [result.id for result in results]
        completed, kept, twice = outcome(variant, ids)
        attempts = sum(variant.runs(task_id) for task_id in ids)
        variant.stop_workers()
        return Row(f"{count} LLM calls, 30% errors, 1,200 RPM limit", "retries within a budget"
                   if variant.name == COURSE else "no retries", variant.name, count, completed, kept, twice,
                   None, f"{attempts} attempts in {took:.1f} s")

    # ---- run them -----------------------------------------------------------------------------

    SCENARIOS = ["worker-killed", "child-killed", "poison", "countdown", "redis-killed", "llm-errors"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks (the tests run this)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    options = parser.parse_args()
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        sys.exit(f"No scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    count, calls = (4, 40) if options.quick else (8, 200)

    folder = Path(tempfile.mkdtemp(prefix="bench-faults-redis-"))
    redis_pid = start_redis(PORT, folder, persistence=True)
    SIMULATOR = launcher.start(speed=20)
    faulty = launcher.start(speed=20, extra_args=["--error-rate", "0.3", "--rpm", "1200"])
    course = Variant(COURSE, URL, VT)
    defaults = Variant(DEFAULTS, f"redis://127.0.0.1:{PORT}/1", 3600)
    rows: list[Row] = []
    print(f"Redis on 127.0.0.1:{PORT} (append-only, fsync always), simulated LLM, workers' logs in {LOGS}",
          flush=True)
    try:
        for name in chosen:
            for variant in (course, defaults):
                redis.Redis.from_url(variant.url).flushdb()
                if name == "worker-killed":
                    rows.append(worker_killed(variant, count))
                elif name == "child-killed":
                    rows.append(child_killed(variant, count))
                elif name == "poison":
                    rows.append(poison(variant))
                elif name == "countdown":
                    rows.append(long_countdown(variant, count))
                elif name == "redis-killed":
                    if variant.name == COURSE:
                        row, redis_pid = redis_killed(variant, folder, redis_pid, count)
                    else:  # a Redis of its own, without persistence
                        other = Path(tempfile.mkdtemp(prefix="bench-faults-redis-"))
                        port = free_port()
                        plain = Variant(DEFAULTS, f"redis://127.0.0.1:{port}/0", 3600)
                        row, other_pid = redis_killed(plain, other, start_redis(port, other, False), count)
                        kill(other_pid)
                        shutil.rmtree(other, ignore_errors=True)
                    rows.append(row)
                elif name == "llm-errors":
                    rows.append(llm_errors(variant, calls, faulty.base_url))
                last = rows[-1]
                print(f"  {last.scenario}, {last.variant}: {last.completed}/{last.sent} completed", flush=True)
    finally:
        course.stop_workers()
        defaults.stop_workers()
        SIMULATOR.stop()
        faulty.stop()
        for process in WORKERS:  # whatever a failed scenario left running, and only that
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for pid, port in SERVERS:
            try:
                ours = f"127.0.0.1:{port}" in Path(f"/proc/{pid}/cmdline").read_text()
            except OSError:
                ours = False  # already gone
            if ours:
                kill(pid)
        shutil.rmtree(folder, ignore_errors=True)

    head = f"{'scenario':44} {'configuration':58} {'sent':>5} {'completed':>9} {'kept':>5} {'held':>5} " \
           f"{'lost':>5} {'ran twice':>9} {'recovery':>9}"
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        recovery = f"{row.recovery:.1f} s" if row.recovery is not None else "–"
        scenario = row.scenario if row.variant == COURSE else ""
        configuration = f"{'course' if row.variant == COURSE else 'Celery defaults'}: {row.configuration}"
        print(f"{scenario:44} {configuration:58} {row.sent:>5} {row.completed:>9} {row.kept:>5} {row.held:>5} "
              f"{row.lost:>5} {row.twice:>9} {recovery:>9}")
    print("\nWhat happened:")
    for row in rows:
        if row.note:
            print(f"- {row.scenario}, {row.variant}: {row.note}")
    if "redis-killed" in chosen:
        print("- Redis: the bench syncs the append-only file on every write (appendfsync always) for an exact "
              "count;\n  the course's own redis-server uses appendfsync everysec: at most the last second of "
              "writes is at risk.")
    print("- kept: failed for good and kept in the dead letter store, to inspect and replay: not lost. held: "
          "unacknowledged in Redis, back after the visibility timeout.")
    ours = [row for row in rows if row.variant == COURSE]
    print(f"lost={sum(row.lost for row in ours)} duplicates={sum(row.twice for row in ours)}")
