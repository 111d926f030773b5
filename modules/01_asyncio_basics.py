"""Lesson 01: asyncio basics

Run:  python modules/01_asyncio_basics.py      (--no-pause runs straight through, --list shows the steps)
You learn: how one thread waits on many slow calls at once with async/await: gather, create_task,
as_completed, wait_for, Semaphore and TaskGroup, and the three mistakes that quietly undo it.

Every step here waits on `fake_api_call`, which sleeps the way a network call waits. Lesson 02
does the same with real HTTP calls to an LLM.
"""
import asyncio
import gc
import math
import time
import warnings

from course import runner as lesson
from course.runner import Result, timer, timings

LATENCY = 0.5  # seconds one call takes


async def fake_api_call(name: str, seconds: float = LATENCY) -> str:
    await asyncio.sleep(seconds)  # waiting on the network: the loop runs other work meanwhile
    return f"{name} done"


async def sequential_vs_gather():
    """gather: start them all, wait once

    Five calls one after another take five latencies. `asyncio.gather` starts all five
    coroutines and waits for them together, so they take about one latency.
    """
    names = [f"call {i}" for i in range(1, 6)]

    with timer() as one_by_one:
        for name in names:
            await fake_api_call(name)

    with timer() as together:
        results = await asyncio.gather(*(fake_api_call(name) for name in names))

    speedup = one_by_one.seconds / together.seconds
    return Result(
        figures={"sequential_s": one_by_one.seconds, "gather_s": together.seconds,
                 "speedup": speedup, "results": len(results)},
        view=timings({"one after another": one_by_one.seconds, "gather": together.seconds},
                     ideal={"one after another": 5 * LATENCY, "gather": LATENCY}),
        note=f"gather was {speedup:.1f}x faster (ideal 5.0x) and kept the order of the results.",
    )


async def create_task_starts_now():
    """create_task: start now, await later

    `asyncio.create_task` schedules a coroutine at once and hands back a Task. The caller goes
    on with its own work while the task runs, and awaits the result only when it needs it.
    """
    with timer() as total:
        summary = asyncio.create_task(fake_api_call("summary"))  # starts at the next await
        await fake_api_call("our own work")                      # runs while summary runs
        result = await summary                                   # already finished: no more wait

    return Result(
        figures={"total_s": total.seconds, "sum_of_calls_s": 2 * LATENCY, "result": result},
        view=timings({"task + own work": total.seconds}, ideal={"task + own work": LATENCY}),
        note=f"Two {LATENCY} s calls finished in {total.seconds:.2f} s: the task ran while we worked.",
    )


async def as_completed_order():
    """as_completed: handle each result the moment it arrives

    With calls of different speeds, `asyncio.as_completed` yields them fastest first, so a
    user sees the first answer after the fastest call, not after the slowest.
    """
    durations = {"slow": 0.9, "fast": 0.2, "medium": 0.5}
    calls = [fake_api_call(name, seconds) for name, seconds in durations.items()]
    start = time.perf_counter()
    arrivals = []
    for next_done in asyncio.as_completed(calls):
        result = await next_done
        arrivals.append({"result": result, "arrived_after_s": time.perf_counter() - start})

    order = [row["result"].split()[0] for row in arrivals]
    return Result(
        figures={"order": order, "first_after_s": arrivals[0]["arrived_after_s"],
                 "last_after_s": arrivals[-1]["arrived_after_s"]},
        view=lesson.rows_table(arrivals, title="sent in the order slow, fast, medium"),
        note=f"First result after {arrivals[0]['arrived_after_s']:.2f} s instead of waiting "
             f"{arrivals[-1]['arrived_after_s']:.2f} s for all of them.",
    )


async def wait_for_timeout():
    """wait_for: give up after a deadline and fall back

    `asyncio.wait_for` cancels a call that takes longer than its timeout and raises
    `TimeoutError`; the caller decides what to do instead, here a quick fallback answer.
    """
    with timer() as waited:
        try:
            answer = await asyncio.wait_for(fake_api_call("slow model", seconds=3.0), timeout=0.4)
        except TimeoutError:
            answer = await fake_api_call("fallback", seconds=0.1)

    return Result(
        figures={"answer": answer, "waited_s": waited.seconds, "timeout_s": 0.4, "slow_call_s": 3.0},
        view=timings({"timeout + fallback": waited.seconds, "waiting for the slow call": 3.0},
                     ideal={"timeout + fallback": 0.5}),
        note=f"Answered '{answer}' after {waited.seconds:.2f} s instead of 3 s.",
    )


async def semaphore_limits_concurrency():
    """Semaphore: at most N calls in flight

    An API allows only so many requests at once. An `asyncio.Semaphore(3)` lets three calls
    through and makes the others wait for a free slot, so ten calls run in four waves.
    """
    limit = asyncio.Semaphore(3)
    in_flight = peak = 0

    async def limited_call(name):
        nonlocal in_flight, peak
        async with limit:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await fake_api_call(name)
            finally:
                in_flight -= 1

    with timer() as total:
        await asyncio.gather(*(limited_call(f"call {i}") for i in range(10)))

    ideal = math.ceil(10 / 3) * LATENCY
    return Result(
        figures={"calls": 10, "limit": 3, "peak_in_flight": peak, "total_s": total.seconds, "ideal_s": ideal},
        view=timings({"10 calls, 3 at a time": total.seconds}, ideal={"10 calls, 3 at a time": ideal}),
        note=f"Never more than {peak} in flight; 4 waves of {LATENCY} s.",
    )


async def task_group_cancels_on_failure():
    """TaskGroup: tasks that live and die together

    `asyncio.TaskGroup` (Python 3.11) waits for every task it started. If one fails, it
    cancels the rest and raises an ExceptionGroup, so no task is left running unseen.
    """
    async def broken_call():
        await asyncio.sleep(0.1)
        raise ConnectionError("the API went away")

    calls = []
    with timer() as total:
        try:
            async with asyncio.TaskGroup() as group:
                calls = [group.create_task(fake_api_call(f"call {i}", seconds=2.0)) for i in range(3)]
                group.create_task(broken_call())
        except* ConnectionError as failures:
            error = failures.exceptions[0]

    cancelled = sum(call.cancelled() for call in calls)
    return Result(
        figures={"error": repr(error), "cancelled": cancelled, "total_s": total.seconds},
        note=f"The failure after 0.1 s cancelled {cancelled} two-second calls; "
             f"the group ended after {total.seconds:.2f} s.",
    )


async def pitfall_blocking_call():
    """Pitfall 1: a blocking call inside a coroutine

    `time.sleep` (or `requests.get`, or a slow loop) never yields to the event loop, so five
    "concurrent" coroutines run one after another. Use the async version of the call, or
    move blocking work to a thread with `asyncio.to_thread`.
    """
    async def blocking_call():
        time.sleep(0.3)  # blocks the whole event loop

    async def call_in_thread():
        await asyncio.to_thread(time.sleep, 0.3)  # blocks a worker thread, not the loop

    with timer() as blocked:
        await asyncio.gather(*(blocking_call() for _ in range(5)))
    with timer() as threaded:
        await asyncio.gather(*(call_in_thread() for _ in range(5)))

    return Result(
        figures={"blocking_s": blocked.seconds, "to_thread_s": threaded.seconds},
        view=timings({"time.sleep in coroutines": blocked.seconds, "asyncio.to_thread": threaded.seconds},
                     ideal={"time.sleep in coroutines": 0.3, "asyncio.to_thread": 0.3}),
        note=f"Blocking serialised the five calls: {blocked.seconds:.2f} s instead of 0.3 s.",
    )


async def pitfall_forgotten_await():
    """Pitfall 2: a forgotten await

    Calling a coroutine function without `await` runs nothing: it only makes a coroutine
    object. Python warns "coroutine ... was never awaited", often far from the bug.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fake_api_call("forgotten")  # missing await: nothing is sent
        kind = type(result).__name__
        del result
        gc.collect()  # the warning appears when the coroutine object is thrown away

    warning = next((str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)), "")
    return Result(
        figures={"got_instead_of_a_result": kind, "warning": warning},
        note="The fix is one word: result = await fake_api_call(...)",
    )


async def pitfall_gather_exceptions():
    """Pitfall 3: one exception in gather

    By default the first exception propagates out of `gather` and the other results are lost
    to you (the other calls still run). With `return_exceptions=True` every call gets a slot
    in the result list: a value or the exception it raised.
    """
    async def call(i):
        if i == 2:
            raise ValueError(f"call {i} got a bad answer")
        return await fake_api_call(f"call {i}", seconds=0.1)

    try:
        await asyncio.gather(*(call(i) for i in range(4)))
        default = "no error"
    except ValueError as error:
        default = f"raised {error!r}; the three good results are gone"

    outcomes = await asyncio.gather(*(call(i) for i in range(4)), return_exceptions=True)
    rows = [{"call": i, "outcome": repr(o)} for i, o in enumerate(outcomes)]
    failed = sum(isinstance(o, Exception) for o in outcomes)
    return Result(
        figures={"default_gather": default, "succeeded": len(outcomes) - failed, "failed": failed},
        view=lesson.rows_table(rows, title=f"default gather {default}. With return_exceptions=True:"),
        note=f"{len(outcomes) - failed} results kept, {failed} error to handle one by one.",
    )


STEPS = [
    sequential_vs_gather,
    create_task_starts_now,
    as_completed_order,
    wait_for_timeout,
    semaphore_limits_concurrency,
    task_group_cancels_on_failure,
    pitfall_blocking_call,
    pitfall_forgotten_await,
    pitfall_gather_exceptions,
]

if __name__ == "__main__":
    lesson.run(STEPS)
