"""Lesson 01: asyncio basics

Run:  make lesson N=01      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
You learn: how one thread waits on many slow calls at once with async/await: gather, create_task,
as_completed, wait_for, Semaphore and TaskGroup, and the three mistakes that quietly undo it.

Every step waits on `fake_api_call`, which sleeps the way a network call waits. Lesson 02
does the same with real HTTP calls to an LLM.

Recap:
- Independent calls: start them together (gather, create_task) and wait once.
- Bound what you start: a Semaphore for "at most N at once", wait_for for "at most T seconds".
- Never block the event loop: no time.sleep or requests in a coroutine; use asyncio.to_thread.
- Await every coroutine, and decide what one failure does to the rest: TaskGroup cancels them,
  return_exceptions keeps them.
"""
import asyncio
import gc
import math
import time
import warnings

from course.runner import run, timer

LATENCY = 0.5  # seconds one call takes


async def fake_api_call(name: str, seconds: float = LATENCY) -> str:
    await asyncio.sleep(seconds)  # the loop runs other work meanwhile
    return f"{name} done"


async def sequential_vs_gather():
    """gather: start them all, wait once

    Calls awaited one after another add up their latencies. `asyncio.gather` starts all the
    coroutines and waits for them together, so they take about one latency.

    Result: gather was {speedup_x} faster (ideal {ideal_speedup_x}), and the results came back
    in the order of the calls.
    """
    names = [f"call {i}" for i in range(1, 6)]

    with timer() as one_by_one:
        for name in names:
            await fake_api_call(name)

    with timer() as together:
        results = await asyncio.gather(*(fake_api_call(n) for n in names))

    return {"one_by_one_s": one_by_one.seconds,
            "gather_s": together.seconds,
            "ideal_gather_s": LATENCY,
            "speedup_x": one_by_one.seconds / together.seconds,
            "ideal_speedup_x": len(names),
            "results": results}


async def create_task_starts_now():
    """create_task: start now, await later

    `asyncio.create_task` schedules a coroutine at once and hands back a Task. The caller goes
    on with its own work while the task runs, and awaits the result only when it needs it.

    Result: two calls took about one latency: the task ran while we worked.
    """
    with timer() as total:
        summary = asyncio.create_task(fake_api_call("summary"))
        await fake_api_call("our own work")  # runs while summary runs
        result = await summary  # already finished: no more waiting

    return {"both_calls_s": total.seconds,
            "ideal_both_calls_s": LATENCY,
            "result": result}


async def as_completed_order():
    """as_completed: handle each result the moment it arrives

    With calls of different speeds, `asyncio.as_completed` yields them fastest first, so a
    user sees the first answer after the fastest call, not after the slowest.

    Result: the first result arrived after {first_after_s} instead of {last_after_s} for all.
    """
    durations = {"slow": 0.9, "fast": 0.2, "medium": 0.5}
    calls = [fake_api_call(name, s) for name, s in durations.items()]
    start = time.perf_counter()
    arrivals = []
    for next_done in asyncio.as_completed(calls):
        result = await next_done
        after = time.perf_counter() - start
        arrivals.append({"result": result, "arrived_after_s": after})

    return {"sent_in_order": ", ".join(durations),
            "arrivals": arrivals,
            "first_after_s": arrivals[0]["arrived_after_s"],
            "last_after_s": arrivals[-1]["arrived_after_s"]}


async def wait_for_timeout():
    """wait_for: give up after a deadline and fall back

    `asyncio.wait_for` cancels a call that takes longer than its timeout and raises
    `TimeoutError`; the caller decides what to do instead, here a quick fallback answer.

    Result: the answer was '{answer}', in about the time of the timeout plus the fallback.
    """
    slow_call, timeout, fallback = 3.0, 0.4, 0.1  # seconds

    with timer() as waited:
        try:
            answer = await asyncio.wait_for(
                fake_api_call("slow model", slow_call), timeout)
        except TimeoutError:
            answer = await fake_api_call("fallback", fallback)

    return {"answer": answer,
            "waited_s": waited.seconds,
            "ideal_waited_s": min(slow_call, timeout + fallback),
            "timeout_s": timeout}


async def semaphore_limits_concurrency():
    """Semaphore: at most N calls in flight

    An API allows only so many requests at once. An `asyncio.Semaphore(slots)` lets that many
    calls through and makes the others wait for a free slot, so the calls run in waves.

    Result: never more than {peak_in_flight} calls in flight: {waves} waves of one latency.
    """
    slots, calls = 3, 10
    limit = asyncio.Semaphore(slots)
    in_flight = peak = 0

    async def limited_call(i):
        nonlocal in_flight, peak
        async with limit:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await fake_api_call(f"call {i}")
            finally:
                in_flight -= 1

    with timer() as total:
        await asyncio.gather(*(limited_call(i) for i in range(calls)))

    waves = math.ceil(calls / slots)
    return {"all_calls_s": total.seconds,
            "ideal_all_calls_s": waves * LATENCY,
            "calls": calls, "slots": slots,
            "peak_in_flight": peak, "waves": waves}


async def task_group_cancels_on_failure():
    """TaskGroup: tasks that live and die together

    `asyncio.TaskGroup` (Python 3.11) waits for every task it started. If one fails, it
    cancels the rest and raises an ExceptionGroup, so no task is left running unseen.

    Result: one failure cancelled {cancelled} of the {calls} long calls, and the group ended
    at once instead of waiting for them.
    """
    seconds, calls = 2.0, 3

    async def broken_call():
        await asyncio.sleep(0.1)
        raise ConnectionError("the API went away")

    with timer() as total:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(fake_api_call("call", seconds))
                         for _ in range(calls)]
                group.create_task(broken_call())
        except* ConnectionError as failures:
            error = failures.exceptions[0]

    return {"each_call_s": seconds,
            "group_ended_after_s": total.seconds,
            "error": repr(error), "calls": calls,
            "cancelled": sum(task.cancelled() for task in tasks)}


async def pitfall_blocking_call():
    """Pitfall 1: a blocking call inside a coroutine

    `time.sleep` (or `requests.get`, or a long loop) never yields to the event loop, so
    "concurrent" coroutines run one after another. Use the async version of the call, or move
    blocking work to a thread with `asyncio.to_thread`.

    Result: blocking ran the {calls} calls one after another; to_thread kept them concurrent.
    """
    calls, seconds = 5, 0.3

    async def blocking_call():
        time.sleep(seconds)  # blocks the whole event loop

    async def call_in_thread():
        await asyncio.to_thread(time.sleep, seconds)  # blocks a thread only

    with timer() as blocked:
        await asyncio.gather(*(blocking_call() for _ in range(calls)))
    with timer() as threaded:
        await asyncio.gather(*(call_in_thread() for _ in range(calls)))

    return {"blocking_s": blocked.seconds, "to_thread_s": threaded.seconds,
            "ideal_s": seconds, "calls": calls}


async def pitfall_forgotten_await():
    """Pitfall 2: a forgotten await

    Calling a coroutine function without `await` runs nothing: it only makes a coroutine
    object. Python warns "coroutine ... was never awaited", often far from the bug.

    Result: the fix is one word: result = await fake_api_call(...)
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fake_api_call("forgotten")  # missing await: nothing runs
        kind = type(result).__name__
        del result
        gc.collect()  # the warning comes when the coroutine is thrown away

    warning = next(str(w.message) for w in caught
                   if issubclass(w.category, RuntimeWarning))
    return {"got_instead_of_a_result": kind, "warning": warning}


async def pitfall_gather_exceptions():
    """Pitfall 3: one exception in gather

    By default the first exception propagates out of `gather` and the other results are lost
    to you (the other calls still run). With `return_exceptions=True` every call gets a slot
    in the result list: a value or the exception it raised.

    Result: with return_exceptions, {succeeded} results kept and {failed} error to handle
    on its own.
    """
    async def call(i):
        if i == 2:
            raise ValueError(f"call {i} got a bad answer")
        return await fake_api_call(f"call {i}", seconds=0.1)

    try:
        await asyncio.gather(*(call(i) for i in range(4)))
        default = "no error"
    except ValueError as error:
        default = f"raised {error!r}, the good results are gone"

    outcomes = await asyncio.gather(*(call(i) for i in range(4)),
                                    return_exceptions=True)
    failed = sum(isinstance(o, Exception) for o in outcomes)
    return {"default_gather": default,
            "with_return_exceptions": [{"call": i, "outcome": repr(o)}
                                       for i, o in enumerate(outcomes)],
            "succeeded": len(outcomes) - failed,
            "failed": failed}


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
    run(STEPS)
