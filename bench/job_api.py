"""The job API under load: 200 submissions at once, then 1,000 status polls, on this machine.

Run:  python bench/job_api.py        (about half a minute; needs nothing running)

It starts what it needs and stops it at the end: Redis (on REDIS_URL when that is set in the
environment, else a private redis-server on a free port), the simulated LLM, one worker (two
prefork processes) and the job API (python -m course.api) on a free port. The load comes from
four processes, each with asyncio and one httpx client (one Python client alone would mostly
measure itself), as four callers.

  - submit: 200 POST /jobs sent at the same moment (one text each), each timed to its 202
  - poll:   1,000 GET /jobs/{id} over those jobs, 50 at a time, each timed
  - then every job is followed to a final state, and every caller's listing is walked
An error is any answer other than 202 to a POST or 200 to a GET, or a failed request. A job is
lost when it does not reach a final state within two minutes, or is missing from its caller's
listing. Each caller may have API_MAX_ACTIVE unfinished jobs; the benchmark raises that share so
the burst measures capacity, not the share (lesson 07 shows the share at work).

The last line is machine-readable:
  errors=<n> lost=<n> submit_p50_ms=<n> submit_p99_ms=<n> poll_p99_ms=<n>
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SUBMISSIONS = 200
POLLS = 1000
POLL_CONCURRENCY = 50
PROCESSES = 4  # load processes: one Python client alone would measure itself more than the API
CALLERS = {f"caller{n}": f"bench-token-of-caller-{n}" for n in range(1, 5)}
FINAL = {"succeeded", "failed", "canceled"}


import bench_redis  # noqa: E402  (first: it sets REDIS_URL before the course reads it)

import httpx  # noqa: E402

from course.api.server import RunningApi  # noqa: E402
from course.jobs import workers  # noqa: E402
from course.llm.simulator import launcher  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def timed(call, wanted: int, failures: dict[str, int]) -> tuple[httpx.Response | None, float]:
    start = time.perf_counter()
    try:
        answer = await call
    except httpx.HTTPError as error:
        answer, what = None, type(error).__name__
    else:
        what = f"{answer.status_code} {answer.text[:120]}"
    if answer is None or answer.status_code != wanted:
        failures[what] = failures.get(what, 0) + 1
    return answer, (time.perf_counter() - start) * 1000


def client_for(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=60)


def submit_part(url: str, part: int, start_at: float) -> dict:
    """One load process: its share of the submissions, all sent at `start_at` (a wall-clock time)."""
    numbers = range(part, SUBMISSIONS, PROCESSES)
    owners = list(CALLERS)

    async def run() -> dict:
        failures: dict[str, int] = {}
        async with client_for(url, len(numbers)) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            burst = await asyncio.gather(*(
                timed(client.post("/jobs", json={"kind": "sentiment", "texts": [f"Review {n}: I love it."]},
                                  headers=bearer(owners[n % len(owners)])), 202, failures)
                for n in numbers))
        return {"ms": [ms for _, ms in burst], "failures": failures,
                "jobs": {answer.json()["id"]: answer.json()["owner"] for answer, _ in burst
                         if answer is not None and answer.status_code == 202}}

    return asyncio.run(run())


def poll_part(url: str, part: int, jobs: dict[str, str], start_at: float) -> dict:
    """One load process: its share of the polls, POLL_CONCURRENCY / PROCESSES at a time."""
    ids = list(jobs)

    async def run() -> dict:
        failures: dict[str, int] = {}
        gate = asyncio.Semaphore(POLL_CONCURRENCY // PROCESSES)
        async with client_for(url, POLL_CONCURRENCY // PROCESSES) as client:
            async def poll(n: int):
                job_id = ids[n % len(ids)]
                async with gate:
                    return await timed(client.get(f"/jobs/{job_id}", headers=bearer(jobs[job_id])), 200, failures)

            await asyncio.sleep(max(0.0, start_at - time.time()))
            polls = await asyncio.gather(*(poll(n) for n in range(part, POLLS, PROCESSES)))
        return {"ms": [ms for _, ms in polls], "failures": failures}

    return asyncio.run(run())


def bearer(owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {CALLERS[owner]}"}


async def settle(url: str, jobs: dict[str, str]) -> tuple[int, int]:
    """(jobs not final within two minutes, jobs missing from their caller's listing)."""
    async with client_for(url, 50) as client:
        unfinished, deadline = set(jobs), time.monotonic() + 120
        while unfinished and time.monotonic() < deadline:
            asked = list(unfinished)
            answers = await asyncio.gather(*(client.get(f"/jobs/{job_id}", headers=bearer(jobs[job_id]))
                                             for job_id in asked))
            unfinished -= {job_id for job_id, answer in zip(asked, answers)
                           if answer.status_code == 200 and answer.json()["status"] in FINAL}
            await asyncio.sleep(0.5)
        listed = set()
        for owner in CALLERS:
            page = "/jobs?limit=100"
            while page:
                answer = (await client.get(page, headers=bearer(owner))).json()
                listed |= {job["id"] for job in answer["jobs"]}
                page = answer["next"]
    return len(unfinished), len(set(jobs) - listed)


def load(api: RunningApi) -> dict:
    """The burst, then the polls, each from PROCESSES processes at once; then every job settled."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=spawn) as pool:
        list(pool.map(time.sleep, [0] * PROCESSES))  # the processes are up before anything is timed
        start_at = time.time() + 0.5
        parts = list(pool.map(submit_part, [api.url] * PROCESSES, range(PROCESSES), [start_at] * PROCESSES))
        jobs = {job_id: owner for part in parts for job_id, owner in part["jobs"].items()}
        start_at = time.time() + 0.5
        polled = list(pool.map(poll_part, [api.url] * PROCESSES, range(PROCESSES), [jobs] * PROCESSES,
                               [start_at] * PROCESSES)) if jobs else []
    failures: dict[str, int] = {}
    for part in parts + polled:
        for what, count in part["failures"].items():
            failures[what] = failures.get(what, 0) + count
    unfinished, unlisted = asyncio.run(settle(api.url, jobs))
    return {"submit_ms": [ms for part in parts for ms in part["ms"]],
            "poll_ms": [ms for part in polled for ms in part["ms"]],
            "failures": failures, "errors": sum(failures.values()),
            "unfinished": unfinished, "unlisted": unlisted, "accepted": len(jobs)}


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="bench-job-api-"))
    bench_redis.start(folder)
    simulator = launcher.start(speed=20)
    os.environ["OPENAI_BASE_URL"] = simulator.base_url  # the worker calls this simulator
    worker = api = None
    try:
        worker = workers.start_worker()
        api = RunningApi(log=folder / "api.log", env={
            "API_TOKENS": ",".join(f"{owner}:{token}" for owner, token in CALLERS.items()),
            "API_MAX_ACTIVE": str(SUBMISSIONS)}).start()
        print(f"Loading the job API at {api.url} from {PROCESSES} processes: {SUBMISSIONS} submissions at once, "
              f"then {POLLS} polls ({POLL_CONCURRENCY} at a time), every job followed to its end ...", flush=True)
        started = time.perf_counter()
        figures = load(api)
        took = time.perf_counter() - started
    finally:
        if api is not None:
            api.close()
        if worker is not None:
            worker.stop()
        simulator.stop()
        bench_redis.stop(folder)

    submit, poll = figures["submit_ms"], figures["poll_ms"]
    lost = figures["unfinished"] + figures["unlisted"]
    print(f"  accepted        {figures['accepted']} of {SUBMISSIONS}")
    print(f"  submit (202)    p50 {percentile(submit, 0.5):.1f} ms   p99 {percentile(submit, 0.99):.1f} ms   "
          f"max {max(submit):.1f} ms")
    if poll:
        print(f"  poll (GET)      p50 {percentile(poll, 0.5):.1f} ms   p99 {percentile(poll, 0.99):.1f} ms   "
              f"mean {statistics.fmean(poll):.1f} ms")
    for what, count in sorted(figures["failures"].items()):
        print(f"  failed          {count} x {what}")
    print(f"  jobs not final  {figures['unfinished']}   not listed {figures['unlisted']}   "
          f"(everything took {took:.1f} s)")
    print(f"errors={figures['errors']} lost={lost} submit_p50_ms={percentile(submit, 0.5):.1f} "
          f"submit_p99_ms={percentile(submit, 0.99):.1f} poll_p99_ms={percentile(poll, 0.99) if poll else 0:.1f}")
    return 1 if figures["errors"] or lost else 0


if __name__ == "__main__":
    sys.exit(main())
