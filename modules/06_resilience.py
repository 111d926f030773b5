"""Lesson 06: resilience patterns

Run:  make lesson N=06      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
You learn: retries with backoff and jitter, a circuit breaker, backpressure on a stream, priority
queues, the dead letter store, poison tasks, idempotent tasks, and the libraries that do each job,
each pattern met on a real fault: first without it, then with it.

The faults are real: the course's simulated LLM is told to answer 503 for a while (an outage),
to fail some calls, or to stream faster than we read; tasks run on real Celery workers over Redis,
and one worker is killed with SIGKILL. On a real model no outage can be injected, and those steps
show what really happened. bench/faults.py measures more crashes (make bench).

Recap:
- Retry only what may work next time, with exponential backoff and jitter, within a budget.
- A circuit breaker stops calling a model that is down: calls fail fast, a fallback answers, one
  probe at a time finds out when it is back.
- A bounded queue between a fast producer and a slow consumer keeps memory flat.
- Urgent work goes to its own queue, read first.
- A task that fails for good goes to a dead letter store, to be replayed once the cause is fixed;
  a task that kills its worker is stopped after a few deliveries.
- Any task can run twice: record its side effect under its id so the second run changes nothing.
- Acks late: a killed worker's tasks come back after the visibility timeout.
"""
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

import openai
import purgatory
import tenacity
from aiolimiter import AsyncLimiter
from purgatory.domain.model import OpenedState

from course.jobs import dead_letters, tasks
from course.jobs.own_worker import QUEUE
from course.llm import retry
from course.llm.retry import backoff_seconds as full_jitter
from course.llm.outage import outage, through_an_outage
from course.measure import busiest, histogram, lines_in, lines_of, peak_memory
from course.runner import Stop, run, shows, timer
from course.samples import ARTICLE

CALLERS = 50  # callers that fail together in steps 1-2
OUTAGE_S = 1.5  # how long the model answers 503 in steps 1-2
BASE_S = 0.25  # the first backoff; each later one doubles
CAP_S = 2.0  # the longest wait between two attempts
ATTEMPTS = 12  # then a caller gives up


def short_request(settings):
    """The smallest chat request: a few tokens of answer."""
    return dict(model=settings.chat_model, max_tokens=5,
                messages=[{"role": "user", "content": "Say hello."}])


async def ask(client, settings):
    return await client.chat.completions.create(**short_request(settings))


async def call_until_it_works(client, settings, backoff, sent):
    """Call; after a transient failure wait backoff(attempt), call again."""
    for attempt in range(ATTEMPTS):
        sent.append((time.monotonic(), attempt))
        try:
            return await ask(client, settings)
        except openai.APIError as error:
            if attempt == ATTEMPTS - 1 or not retry.is_transient(error):
                raise
            await asyncio.sleep(backoff(attempt))


@dataclass
class Storm:
    sent: list  # when each request went out, in seconds from the start
    retries: list  # the same, for the retries only
    seconds: float  # until every caller had its answer


async def retry_storm(client, settings, backoff):
    """CALLERS callers at once into an outage, each retrying with `backoff`."""
    await outage(OUTAGE_S)
    sent, start = [], time.monotonic()
    await asyncio.gather(*(call_until_it_works(client, settings, backoff, sent)
                           for _ in range(CALLERS)))
    return Storm([at - start for at, _ in sent],
                 [at - start for at, attempt in sent if attempt],
                 time.monotonic() - start)


@shows(call_until_it_works)
async def retries_with_and_without_jitter(client, settings):
    """Retries without jitter come back in waves; jitter spreads them

    Fifty callers send at once while the model is down (an outage asked of the
    simulator), and back off exponentially. Without jitter all wait the same and come
    back together; with full jitter each waits a random part of twice that: a lower peak
    for the server, though the unluckiest caller may finish later.

    Result: retries in the busiest 100 ms: {busiest_100ms}; every caller had its answer
    after {all_answered}.
    """
    backoffs = {"no_jitter": lambda n: BASE_S * 2**n,
                "full_jitter": lambda n: full_jitter(n, 2*BASE_S, CAP_S)}
    runs = {name: await retry_storm(client, settings, backoff)
            for name, backoff in backoffs.items()}

    return {"requests_per_half_second":
            histogram({name: run.sent for name, run in runs.items()}, 0.5),
            "busiest_100ms":
            {name: busiest(run.retries, 0.1) for name, run in runs.items()},
            "all_answered":
            {f"{name}_s": run.seconds for name, run in runs.items()}}


async def retries_from_tenacity(client, settings):
    """The same retries from a library: tenacity

    `tenacity` is what most Python projects retry with: a decorator that says what to retry
    (is_transient), how long to wait (random exponential: full jitter) and when to stop. The
    same fifty callers meet the same outage.

    Result: {answered} of {callers} callers answered, after {attempts} requests in all.
    The retrying call is {with_tenacity_lines} lines with tenacity, {hand_written_lines} by
    hand.
    """
    sent = []

    @tenacity.retry(
        retry=tenacity.retry_if_exception(retry.is_transient),
        wait=tenacity.wait_random_exponential(
            multiplier=2 * BASE_S, max=CAP_S),
        stop=tenacity.stop_after_attempt(ATTEMPTS), reraise=True)
    async def ask_with_retries():
        sent.append(time.monotonic())
        return await ask(client, settings)

    await outage(OUTAGE_S)
    with timer() as took:
        answers = await asyncio.gather(
            *(ask_with_retries() for _ in range(CALLERS)),
            return_exceptions=True)

    return {"callers": CALLERS, "attempts": len(sent),
            "answered": sum(not isinstance(a, Exception) for a in answers),
            "all_answered_s": took.seconds,
            "hand_written_lines": lines_of(call_until_it_works),
            "with_tenacity_lines": lines_of(ask_with_retries)}


REQUESTS, EVERY_S = 30, 0.1  # steps 3-6: a user request every 0.1 s
DOWN_AT_S, DOWN_FOR_S = 0.5, 1.5  # the model is down from 0.5 s to 2 s
DEADLINE_S = 1.0  # the longest a user request may take


def users(answer):
    """REQUESTS users, one every EVERY_S, meet the same outage."""
    return through_an_outage(answer, REQUESTS, EVERY_S, DOWN_AT_S, DOWN_FOR_S)


async def without_a_breaker(client, settings):
    """Without a breaker, each request waits out its deadline

    A steady stream of user requests meets an outage. Each one retries with jitter until
    it gets an answer or its deadline passes, then shows a fallback. While the model is
    down every user waits the whole deadline, and the retries keep a dead model busy.

    Result: {fallbacks} of {requests} users got the fallback, after a median wait of
    {fallback_wait_s}; the model got {requests_to_the_model} requests.
    """
    sent = []

    def jittered(attempt):
        return retry.backoff_seconds(attempt, base=0.1)

    async def answer():
        try:
            async with asyncio.timeout(DEADLINE_S):
                await call_until_it_works(client, settings, jittered, sent)
            return "model"
        except (TimeoutError, openai.APIError):
            return "fallback"

    calls = await users(answer)
    waits = [c["took_s"] for c in calls if c["outcome"] == "fallback"]

    return {"requests": len(calls), "fallbacks": len(waits),
            "fallback_wait_s": statistics.median(waits or [0]),
            "deadline_s": DEADLINE_S, "requests_to_the_model": len(sent)}


MODEL_DOWN = (openai.APIConnectionError, openai.InternalServerError)


class BreakerOpen(Exception):
    """The breaker is open: the call was not made."""


class CircuitBreaker:
    """Stops calling a failing model; finds out when it is back."""

    def __init__(self, trip=3, cool=0.4):
        self.trip, self.cool, self.failures, self.log = trip, cool, 0, []
        self.move("closed")

    def move(self, state):
        self.state, self.since = state, time.monotonic()
        self.log.append((self.since, state))

    async def call(self, make_call):
        cooled = time.monotonic() > self.since + self.cool
        if self.state == "open" and cooled:
            self.move("half-open")  # this call is the one probe
        elif self.state != "closed":
            raise BreakerOpen()  # fail fast: nothing is sent
        try:
            answer = await make_call()
        except MODEL_DOWN:
            self.failures += 1
            tripped = self.failures >= self.trip
            if tripped or self.state == "half-open":
                self.move("open")
            raise
        self.failures = 0
        if self.state == "half-open":
            self.move("closed")
        return answer


async def answer_with_breaker(breaker, client, settings):
    """One attempt through the breaker; the fallback when it fails or is open."""
    try:
        await breaker.call(lambda: ask(client, settings))
        return "model"
    except BreakerOpen:
        return "failed fast"
    except openai.APIError:
        return "model failed"


@shows(CircuitBreaker)
async def circuit_breaker_states(client, settings):
    """A circuit breaker: closed, open, half-open, closed

    Same users, same outage, each request through one breaker: `trip` failures in a row
    open it; after `cool` s one request probes the model (half-open) and closes it again,
    or opens it for another `cool` s.

    Result: {timeline}
    """
    start, breaker = time.monotonic(), CircuitBreaker(trip=3, cool=0.4)
    await users(lambda: answer_with_breaker(breaker, client, settings))

    changes = [f"{state} {at - start:.2f} s" for at, state in breaker.log]
    return {"timeline": " → ".join(changes),
            "_opened": sum(state == "open" for _, state in breaker.log),
            "_final_state": breaker.state}


@shows(answer_with_breaker)
async def open_breaker_fails_fast(client, settings):
    """While the breaker is open, calls fail fast

    Same users, same outage, through a new breaker. While it is open a request is not sent
    at all: the user gets the fallback at once instead of after the deadline, and the dead
    model is left alone until a probe finds it back.

    Result: {failed_fast} requests failed fast, in {fail_fast_us} µs each instead of the
    {deadline_s} deadline; the model got {requests_to_the_model} requests.
    """
    breaker = CircuitBreaker(trip=3, cool=0.4)
    calls = await users(
        lambda: answer_with_breaker(breaker, client, settings))
    fast = [c["took_s"] for c in calls if c["outcome"] == "failed fast"]
    answered = [c for c in calls if c["outcome"] == "model"]

    return {"requests": len(calls), "failed_fast": len(fast),
            "fail_fast_us": statistics.median(fast or [0]) * 1e6,
            "deadline_s": DEADLINE_S,
            "answered_by_the_model": len(answered),
            "requests_to_the_model": len(calls) - len(fast)}


async def breaker_from_purgatory(client, settings):
    """The same breaker from a library: purgatory

    `purgatory` keeps breakers by name (in memory, or in Redis to share them between
    processes) and tells a listener each change of state. Same users, same outage.

    Result: {failed_fast} requests failed fast; the states went {states}. It replaces the
    {lines_replaced} lines of CircuitBreaker.
    """
    breakers = purgatory.AsyncCircuitBreakerFactory(
        default_threshold=3, default_ttl=0.4)
    states = ["closed"]
    breakers.add_listener(
        lambda name, kind, event:
        states.append(event.state) if kind == "state_changed" else None)

    async def answer():
        try:
            async with await breakers.get_breaker("llm"):
                await ask(client, settings)
            return "model"
        except OpenedState:  # what purgatory raises while open
            return "failed fast"
        except openai.APIError:
            return "model failed"

    calls = await users(answer)
    fast = [c for c in calls if c["outcome"] == "failed fast"]

    return {"failed_fast": len(fast), "states": " → ".join(states),
            "lines_replaced": lines_of(CircuitBreaker)}


STREAMS = 20  # answers streamed at the same time in step 7
PER_CHUNK_S = 0.001  # what the slow consumer spends on each chunk


async def stream_into(queue, client, settings, number):
    """Put each chunk of one streamed answer in the queue."""
    prompt = f"Write about this ({number}): {ARTICLE}"
    stream = await client.chat.completions.create(
        model=settings.large_model, stream=True,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-sim-latency": "0.5"})  # all of it in 0.5 s
    async for chunk in stream:
        await queue.put(chunk)  # full: wait here, stop reading


@shows(stream_into)
async def backpressure_with_a_bounded_queue(client, settings):
    """Backpressure: a bounded queue for a fast stream

    Twenty answers stream in faster than the consumer handles them. With no bound the
    queue takes every chunk as it comes, and memory grows with the stream. With `maxsize`
    a full queue makes `put` wait: the producers stop reading until there is room.

    Result: the largest queue was {largest_unbounded} chunks without a bound and
    {largest_bounded} with maxsize={maxsize}.
    """
    rows = []
    for maxsize in (0, 20):  # 0: no bound
        queue, largest = asyncio.Queue(maxsize), 0

        async def produce():
            await asyncio.gather(*(stream_into(queue, client, settings, n)
                                   for n in range(STREAMS)))
            await queue.put(None)  # the end

        with peak_memory() as memory, timer() as took:
            producing = asyncio.create_task(produce())
            while await queue.get() is not None:
                largest = max(largest, queue.qsize() + 1)
                await asyncio.sleep(PER_CHUNK_S)  # the slow consumer's work
            await producing
        rows.append({"maxsize": maxsize or "none", "largest_queue": largest,
                     "peak_memory_mib": memory.mib, "took_s": took.seconds})

    unbounded, bounded = rows
    return {"queues": rows, "maxsize": bounded["maxsize"],
            "largest_unbounded": unbounded["largest_queue"],
            "largest_bounded": bounded["largest_queue"]}


RATE, CALLS = 600, 40  # step 8: requests per minute the simulator allows


async def rate_limit_from_aiolimiter(client, settings):
    """Lesson 02's rate limiter from a library: aiolimiter

    `AsyncLimiter(max_rate, period)` lets `max_rate` calls through per `period`, in a burst if
    they come together; one call per `60 / RATE` s spaces them evenly, as lesson 02's
    RequestsPerMinute did. The simulator enforces RATE requests a minute (a header).

    Result: {answered} of {calls} answered, {rate_limited} refused with 429, at
    {answered_per_minute} a minute. It replaces the {lines_replaced} lines of
    RequestsPerMinute.
    """
    limiter = AsyncLimiter(1, 60 / RATE)  # one per 60/RATE s
    rpm = {"x-sim-rpm": str(RATE)}  # the simulator's limit for these calls

    async def limited_call():
        async with limiter:
            return await client.chat.completions.create(
                **short_request(settings), extra_headers=rpm)

    with timer() as took:
        outcomes = await asyncio.gather(
            *(limited_call() for _ in range(CALLS)), return_exceptions=True)
    answered = sum(not isinstance(o, Exception) for o in outcomes)
    refused = sum(isinstance(o, openai.RateLimitError) for o in outcomes)

    return {"calls": CALLS, "answered": answered, "rate_limited": refused,
            "answered_per_minute": answered / took.seconds * 60,
            "limit_rpm": RATE, "lines_replaced": lines_in(
                "modules/02_concurrent_llm.py", "RequestsPerMinute")}


def wait_until(condition, seconds=60, every=0.02):
    """Check `condition()` every `every` s until it is true."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise Stop(f"Still waiting after {seconds} s. Is the worker running? "
                       "Its log is in .course-data/; check with: make doctor")
        time.sleep(every)


REPORT_S, BACKLOG_PER_SLOT = 0.2, 8  # step 9: the batch work already queued


def urgent_task_jumps_the_backlog(app, worker):
    """Priority: the urgent task skips the backlog

    A batch job has filled `low` with reports, eight for each task the worker runs at
    once. Then a user needs an answer now. Sent to `high` (the course routes chat there),
    it runs as soon as one report ends: the worker reads `high` first. Sent to `low`, it
    waits behind the whole backlog.

    Result: the urgent task waited {on_high_s} on `high`, {behind_the_backlog_s} behind a
    backlog of {backlog} reports.
    """
    inspector = app.control.inspect(destination=worker.names, timeout=1)
    slots = sum(s["pool"]["max-concurrency"]  # processes or threads
                for s in (inspector.stats() or {}).values())
    waited = {}
    for queue in ("high", "low"):
        backlog = [tasks.long_report.delay(1, REPORT_S)
                   for _ in range(BACKLOG_PER_SLOT * slots)]
        wait_until(lambda: any(r.state != "PENDING" for r in backlog))
        with timer() as urgent:
            answer = tasks.add.apply_async((2, 2), queue=queue)
            answer.get(timeout=60)
        waited[queue] = urgent.seconds
        for report in backlog:
            report.get(timeout=60)

    return {"on_high_s": waited["high"],
            "behind_the_backlog_s": waited["low"],
            "backlog": len(backlog), "worker_slots": slots}


def failed_for_good_lands_in_dead_letters(own_workers):
    """A task that fails for good lands in the dead letter store

    `summarise_document` summarises a text stored in Redis; this one is not there. The task
    retries twice, then fails for good. The course keeps such a task in its dead letter store
    (course/jobs/dead_letters.py) until someone replays or deletes it.

    Result: the entry is listed: {listed}; the last line of its traceback says
    {traceback_ends}
    """
    own_workers.running()  # the lesson's own worker, on its own queue
    result = tasks.summarise_document.apply_async(
        (f"lesson06-{uuid.uuid4().hex[:8]}",), queue=QUEUE)
    result.get(timeout=30, propagate=False)
    wait_until(lambda: dead_letters.get(result.id))  # written after FAILURE
    entry = dead_letters.get(result.id)
    failed_at = time.localtime(entry["failed_at"])
    entry["failed_at"] = time.strftime("%H:%M:%S", failed_at)
    fields = ["task", "args", "error", "reason", "attempts", "failed_at"]
    listed = [e["id"] for e in dead_letters.entries()]

    return {"entry": [{"field": f, "value": entry[f]} for f in fields],
            "listed": result.id in listed,
            "traceback_ends": entry["traceback"].strip().splitlines()[-1]}


def fix_then_replay(redis, own_workers):
    """Fix the cause, replay, and the entry is gone

    A dead letter waits for a person: here the fix is to store the missing document.
    `dead_letters.replay(id)` sends the task again with the same arguments under a new id,
    and removes the entry once it is sent.

    Result: the replay ended in {state} ({summary_words} words of summary); the entry is
    still there: {entry_still_there}.
    """
    own_workers.running()
    letters = [e for e in dead_letters.entries()
               if e["task"] == tasks.summarise_document.name]
    if not letters:
        raise Stop("No dead letter to replay: run step 10 first (STEP=10).")
    entry = letters[0]
    redis.set(f"course:documents:{entry['args'][0]}", ARTICLE)  # the fix
    replayed = dead_letters.replay(entry["id"])
    summary = replayed.get(timeout=60)["summary"]

    return {"state": replayed.state, "summary_words": len(summary.split()),
            "new_id": replayed.id != entry["id"],
            "entry_still_there": dead_letters.get(entry["id"]) is not None}


def poison_task_is_stopped(own_workers, settings):
    """A task that kills its worker is stopped after a few deliveries

    `crash_worker_process` ends the process that runs it, as a segfault or the OOM killer
    would. Celery gives a task whose process died back to the queue (reject on worker lost),
    so it would come back forever; the course counts its deliveries and stops it after
    MAX_DELIVERIES, into the dead letter store.

    Result: it ran {runs} times (MAX_DELIVERIES={max_deliveries}), then {state}; the
    worker still serves: {worker_still_serves}.
    """
    own_workers.running()
    poison = tasks.crash_worker_process.apply_async(queue=QUEUE)
    poison.get(timeout=60, propagate=False)
    wait_until(lambda: dead_letters.get(poison.id))
    after = tasks.add.apply_async((2, 2), queue=QUEUE).get(timeout=30)

    return {"runs": tasks.runs_of(poison.id), "state": poison.state,
            "max_deliveries": settings.max_deliveries,
            "reason": dead_letters.get(poison.id)["reason"],
            "worker_still_serves": after == 4}


DELIVERIES = 2  # step 13: how often the same message is sent


@shows(tasks.credit.run)
def delivered_twice_applied_once(own_workers):
    """Delivered twice, applied once: idempotent tasks

    Redis can hand the same message out twice: a worker that dies after the work but before
    its acknowledgement. Here one message (same id, same arguments) is sent DELIVERIES
    times on purpose, as that redelivery would, to a task that credits 500 cents.

    Result: the plain increment credited {plain_cents} cents, the one keyed by task id
    {keyed_cents}.
    """
    own_workers.running()
    balances = {}
    for once in (False, True):
        account = f"lesson06-{uuid.uuid4().hex[:8]}"
        task_id = str(uuid.uuid4())
        for _ in range(DELIVERIES):
            tasks.credit.apply_async((account, 500), {"once": once},
                                     task_id=task_id, queue=QUEUE)
        wait_until(lambda: tasks.completions_of(task_id) == DELIVERIES)
        balances["keyed" if once else "plain"] = tasks.balance(account)

    return {"deliveries": DELIVERIES, "plain_cents": balances["plain"],
            "keyed_cents": balances["keyed"]}


@shows(tasks.flaky_llm_call_autoretry.run)
def retries_from_celery(own_workers):
    """Celery's own retries: autoretry_for and retry_backoff

    Celery can retry a task by itself: `autoretry_for` names the errors, `retry_backoff` and
    `retry_jitter` space the attempts. The simulator fails the first two calls with a 500.
    What it does not do, and the course's `call_llm` does: honour Retry-After, and stop once
    a total time budget is spent.

    Result: it succeeded on attempt {attempts}; the options stand in for the {call_llm_lines}
    lines of call_llm.
    """
    own_workers.running()
    result = tasks.flaky_llm_call_autoretry.apply_async(
        (f"lesson06-{uuid.uuid4()}", 2), queue=QUEUE)

    return {"attempts": result.get(timeout=60)["attempts"],
            "call_llm_lines": lines_of(tasks.call_llm)}


TASKS, TASK_S = 8, 1.0  # step 15: LLM tasks of about a second each


def killed_worker_loses_nothing(own_workers):
    """A worker killed mid-task loses nothing

    The course acknowledges a task only once it has finished (acks late). Its own worker (a
    visibility timeout of a few seconds) runs LLM tasks and is killed with SIGKILL in the
    middle. A new worker starts at once; Redis gives it the dead worker's unacknowledged
    tasks once the visibility timeout has passed. bench/faults.py measures more crashes.

    Result: {finished} of {sent} finished, {lost} lost, {done_twice} done twice; the last
    came back {recovery_s} after the kill.
    """
    worker = own_workers.running()
    results = [tasks.counted_llm_call.apply_async(
        (f"Question {n}", TASK_S), queue=QUEUE) for n in range(TASKS)]
    wait_until(lambda: sum(r.state == "STARTED" for r in results) >= 2)
    running = sum(r.state == "STARTED" for r in results)
    worker.kill()  # SIGKILL, pool and all: no acknowledgement
    killed_at = time.monotonic()
    own_workers.start()
    for result in results:
        result.get(timeout=60 + own_workers.visibility_timeout,
                   propagate=False)
    finished = sum(r.state == "SUCCESS" for r in results)

    return {"sent": TASKS, "running_at_the_kill": running,
            "finished": finished, "lost": TASKS - finished,
            "recovery_s": time.monotonic() - killed_at,
            "ran_again": sum(tasks.runs_of(r.id) > 1 for r in results),
            "done_twice":
            sum(tasks.completions_of(r.id) > 1 for r in results),
            "visibility_timeout_s": own_workers.visibility_timeout}


STEPS = [
    retries_with_and_without_jitter,
    retries_from_tenacity,
    without_a_breaker,
    circuit_breaker_states,
    open_breaker_fails_fast,
    breaker_from_purgatory,
    backpressure_with_a_bounded_queue,
    rate_limit_from_aiolimiter,
    urgent_task_jumps_the_backlog,
    failed_for_good_lands_in_dead_letters,
    fix_then_replay,
    poison_task_is_stopped,
    delivered_twice_applied_once,
    retries_from_celery,
    killed_worker_loses_nothing,
]

if __name__ == "__main__":
    run(STEPS)
