"""The tasks the worker runs: a hello-world, LLM calls, progress, retries, failures, beat.

Arguments are JSON (numbers, strings, lists, dicts) and checked first: a malformed call fails
at once with `BadArguments`, which is never retried. Every LLM task retries transient errors
(429, 5xx, timeouts, lost connections) with `call_llm`.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time

import openai
import redis

from course import llm
from course.jobs.celery_app import LONGEST_COUNTDOWN, RETRY_BACKOFF_MAX, RETRY_BUDGET, app
from course.llm import retry
from course.settings import settings


class BadArguments(ValueError):
    """The task was called with arguments it cannot use; retrying would not help."""


# ---- one event loop per worker process, running in a thread of its own -----------------
# Each task hands its coroutine to that loop and waits for the answer. Under prefork a process
# runs one task at a time; under `--pool threads` many tasks share the process, and their LLM
# calls overlap on the one loop (a loop per thread would need a client and a connection pool per
# thread). The AsyncOpenAI client is made once and stays bound to the loop, which never closes,
# so no "Event loop is closed" between tasks. A forked pool process starts its own loop.
_loop: asyncio.AbstractEventLoop | None = None
_client = None
_redis: redis.Redis | None = None
_lock = threading.Lock()


def _forget_after_fork() -> None:
    # A forked pool process has none of its parent's threads: not the loop's either.
    global _loop, _client, _redis, _lock
    _loop = _client = _redis = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_loop.run_forever,
                                      name="llm-event-loop", daemon=True)
            thread.start()
        return _loop


def run_async(coroutine):
    """Run a coroutine on this process's event loop, from any thread, and return its result."""
    future = asyncio.run_coroutine_threadsafe(coroutine, _event_loop())
    try:
        # Short waits: a time limit or a revoke that the thread pool raises in this thread
        # lands between two of them (a single long wait in C would hold it until the call ends).
        while not future.done():
            concurrent.futures.wait([future], timeout=0.1)
        return future.result()
    except BaseException:
        future.cancel()  # a time limit or a revoke stopped the task: stop its call too
        raise


def client():
    """This process's AsyncOpenAI client, made once (same factory as the lessons)."""
    global _client
    with _lock:
        if _client is None:
            _client = llm.make_client()
        return _client


def call_llm(task, coroutine):
    """Run one LLM call of `task`; on a transient error, retry the task later.

    The wait honours Retry-After (else exponential backoff with full jitter), each wait is at
    most LONGEST_COUNTDOWN and all of them together at most RETRY_BUDGET seconds; once that is
    spent, or after max_retries, the error fails the task for good.
    """
    try:
        return run_async(coroutine)
    except Exception as error:
        if not retry.is_transient(error):
            raise
        # The time waited so far travels with the task, retry to retry.
        waited = float(task.request.get("course_retry_waited") or 0)
        left = RETRY_BUDGET - waited
        if left < 0.1:
            raise
        delay = min(left, retry.delay_before_retry(
            error, task.request.retries, base=1.0, cap=LONGEST_COUNTDOWN))
        raise task.retry(exc=error, countdown=delay,
                         headers={"course_retry_waited": waited + delay})


def store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    return _redis


def first_time(key: str, seconds: int = 24 * 3600) -> bool:
    """True only the first time `key` is seen (SET NX).

    With Redis as the broker a task can run twice (a worker dies after the work but before
    the acknowledgement, or a message outlives the visibility timeout), so a task that writes
    records what it did under its own id and does nothing the second time.
    """
    return bool(store().set(f"course:done:{key}", 1, nx=True, ex=seconds))


def _text(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadArguments(f"{name} must be a non-empty string, got {value!r}")
    return value


async def _ask(prompt: str, model: str | None = None, headers: dict | None = None,
               max_tokens: int = 200) -> str:
    response = await client().chat.completions.create(
        model=model or settings.chat_model, max_tokens=max_tokens,
        messages=[{"role": "user", "content": prompt}], extra_headers=headers or {})
    return response.choices[0].message.content or ""


LLM_TASK = dict(bind=True, throws=(BadArguments,), max_retries=20)  # the budget usually ends it first


# ---- the hello-world ------------------------------------------------------------------


@app.task
def add(x, y):
    if not all(isinstance(n, (int, float)) for n in (x, y)):
        raise BadArguments(f"add needs two numbers, got {x!r} and {y!r}")
    return x + y


# ---- LLM tasks ------------------------------------------------------------------------


@app.task(**LLM_TASK)
def chat_completion(self, prompt, model=None):
    answer = call_llm(self, _ask(_text(prompt, "prompt"), model))
    return {"model": model or settings.chat_model, "answer": answer}


@app.task(**LLM_TASK)
def embed_batch(self, texts, batch_size=8):
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise BadArguments(f"texts must be a non-empty list of strings, got {type(texts).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BadArguments(f"batch_size must be a positive integer, got {batch_size!r}")
    dimensions = 0
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        response = call_llm(self, client().embeddings.create(model=settings.embedding_model, input=batch))
        dimensions = len(response.data[0].embedding)
        done = start + len(batch)
        self.update_state(state="PROGRESS", meta={"current": done, "total": len(texts)})
    # The vectors stay out of the result backend: a result is a summary, not a data store.
    return {"texts": len(texts), "dimensions": dimensions, "batches": -(-len(texts) // batch_size)}


@app.task(**LLM_TASK)
def analyse_sentiment(self, text):
    answer = call_llm(self, _ask(f"Classify the sentiment (positive, negative or neutral): {_text(text, 'text')}"))
    return {"sentiment": answer}


@app.task(**LLM_TASK)
def summarise(self, text):
    return {"summary": call_llm(self, _ask(f"Summarise in one sentence: {_text(text, 'text')}"))}


@app.task(**LLM_TASK)
def extract_keywords(self, text):
    return {"keywords": call_llm(self, _ask(f"Extract the keywords: {_text(text, 'text')}"))}


@app.task(bind=True, throws=(BadArguments,))
def combine_analysis(self, results):
    """A chord's callback: gets the list of the group's results, in order."""
    if not isinstance(results, list):
        raise BadArguments(f"results must be a list, got {type(results).__name__}")
    combined = {}
    for part in results:
        combined.update(part if isinstance(part, dict) else {"value": part})
    return {"parts": len(results), **combined}


@app.task(**LLM_TASK)
def flaky_llm_call(self, key, fail_first):
    """The simulator answers 500 to the first `fail_first` calls with this key;
    call_llm retries the task until it works."""
    if not isinstance(fail_first, int) or fail_first < 0:
        raise BadArguments(f"fail_first must be a whole number >= 0, "
                           f"got {fail_first!r}")
    headers = {"x-sim-fail-first": str(fail_first),
               "x-sim-fail-key": _text(key, "key")}
    answer = call_llm(self, _ask("Hello?", headers=headers, max_tokens=20))
    return {"attempts": self.request.retries + 1, "answer": answer}


TRANSIENT = (openai.InternalServerError, openai.RateLimitError, openai.APIConnectionError)


@app.task(bind=True, throws=(BadArguments,),
          autoretry_for=TRANSIENT, max_retries=6,
          retry_backoff=1, retry_jitter=True,
          retry_backoff_max=RETRY_BACKOFF_MAX)
def flaky_llm_call_autoretry(self, key, fail_first):
    """`flaky_llm_call` retried by Celery itself (autoretry_for, retry_backoff), not by call_llm."""
    if not isinstance(fail_first, int) or fail_first < 0:
        raise BadArguments(f"fail_first must be >= 0, got {fail_first!r}")
    headers = {"x-sim-fail-first": str(fail_first),
               "x-sim-fail-key": _text(key, "key")}
    answer = run_async(_ask("Hello?", headers=headers, max_tokens=20))
    return {"attempts": self.request.retries + 1, "answer": answer}


@app.task(**LLM_TASK)
def counted_llm_call(self, prompt, seconds=None):
    """An LLM call (taking `seconds` on the simulator) that counts its runs and its completions in
    Redis: after a crash, was every task done, and none done twice?"""
    _count_run(self.request.id)
    headers = {"x-sim-latency": str(seconds)} if seconds is not None else {}
    answer = call_llm(self, _ask(_text(prompt, "prompt"), headers=headers, max_tokens=20))
    return {"answer": answer, "runs": runs_of(self.request.id), "completed": _count_completion(self.request.id)}


def _count_completion(task_id: str) -> int:
    completed = store().incr(f"course:completed:{task_id}")
    store().expire(f"course:completed:{task_id}", 24 * 3600)
    return completed


def completions_of(task_id: str) -> int:
    """How many times `counted_llm_call` or `credit` finished with this id."""
    return int(store().get(f"course:completed:{task_id}") or 0)


class DocumentMissing(LookupError):
    """The document a task should work on is not in Redis (yet)."""


@app.task(bind=True, throws=(BadArguments,), max_retries=2, default_retry_delay=0.5)
def summarise_document(self, key):
    """Summarise the document stored under `key`. Not there: retried twice, then it fails for
    good and lands in the dead letter store, to be replayed once the document is there."""
    text = store().get(f"course:documents:{_text(key, 'key')}")
    if text is None:
        raise self.retry(exc=DocumentMissing(f"no document {key!r} in Redis"))
    return {"summary": call_llm(self, _ask(f"Summarise in one sentence: {text}"))}


@app.task(bind=True, throws=(BadArguments,))
def credit(self, account, cents, once=True):
    """A side effect: credit `cents` to `account`. once=True keys the credit by the task's id, in
    one atomic HSETNX, so a message delivered twice credits once; once=False adds it each run."""
    if not isinstance(cents, int) or cents <= 0:
        raise BadArguments(f"cents must be an int > 0, got {cents!r}")
    key = f"course:credits:{_text(account, 'account')}"
    if once:  # keyed by the task's id: a rerun adds nothing
        applied = store().hsetnx(key, self.request.id, cents)
    else:  # a plain increment: every run adds it again
        applied = store().hincrby(key, "unkeyed", cents)
    _count_completion(self.request.id)
    return {"applied": bool(applied), "balance": balance(account)}


def balance(account: str) -> int:
    """The sum of every credit recorded for `account`."""
    return sum(int(cents) for cents in store().hvals(f"course:credits:{account}"))


# ---- progress, cancellation, failure --------------------------------------------------


@app.task(bind=True, throws=(BadArguments,))
def long_report(self, steps=10, step_seconds=0.5):
    """A long job that reports each step; revoke it with terminate=True to stop it mid-way."""
    if not isinstance(steps, int) or steps < 1:
        raise BadArguments(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(step_seconds, (int, float)) or step_seconds < 0:
        raise BadArguments(f"step_seconds must be a number >= 0, got {step_seconds!r}")
    started = time.perf_counter()
    for step in range(1, steps + 1):
        time.sleep(step_seconds)  # stands in for one section of the report
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
    return {"steps": steps, "seconds": round(time.perf_counter() - started, 2)}  # as it ran


@app.task(bind=True, throws=(BadArguments,))
def counted_job(self, steps=3, step_seconds=1.0):
    """A long job that counts its runs in Redis: after a crash under it, did it run once or twice?"""
    if not isinstance(steps, int) or steps < 1:
        raise BadArguments(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(step_seconds, (int, float)) or step_seconds < 0:
        raise BadArguments(f"step_seconds must be a number >= 0, got {step_seconds!r}")
    runs = _count_run(self.request.id)
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps, "run": runs})
    return {"steps": steps, "run": runs}


def _count_run(task_id: str) -> int:
    runs = store().incr(f"course:runs:{task_id}")
    store().expire(f"course:runs:{task_id}", 24 * 3600)
    return runs


def runs_of(task_id: str) -> int:
    """How many times `counted_job` or `crash_worker_process` started with this id."""
    return int(store().get(f"course:runs:{task_id}") or 0)


@app.task(bind=True)
def crash_worker_process(self):
    """A poison message: it kills the process running it, as a segfault or the OOM killer would.

    Each delivery kills a pool process (the worker starts a new one); after MAX_DELIVERIES it is
    not run again but failed and kept in the dead letter store. Under --pool solo or threads
    it kills the whole worker.
    """
    _count_run(self.request.id)
    os._exit(1)


class ReportGenerationError(RuntimeError):
    """Raised on purpose by `failing_task`."""


@app.task
def failing_task():
    raise ReportGenerationError("The report could not be generated: "
                                "the data source is empty (raised on purpose).")


# ---- beat -----------------------------------------------------------------------------


@app.task(bind=True)
def heartbeat(self):
    """Beat sends this every few seconds: count it once per task id, even if it runs twice."""
    if first_time(f"heartbeat:{self.request.id}"):
        store().incr("course:heartbeat:count")
        store().set("course:heartbeat:last", time.time())
    return int(store().get("course:heartbeat:count") or 0)


@app.task
def nightly_report():
    """Beat's 02:00 job: how many heartbeats so far."""
    return {"heartbeats": int(store().get("course:heartbeat:count") or 0), "at": time.time()}


# ---- lesson 05: a job that tells the client instead of waiting to be asked ------------


@app.task(bind=True, throws=(BadArguments,))
def report_with_updates(self, steps=5, step_seconds=0.2, channel=None, webhook_url=None):
    """`long_report` that also publishes each step to a Redis channel and POSTs a webhook when done."""
    import json

    from course.jobs import webhook

    if not isinstance(steps, int) or steps < 1:
        raise BadArguments(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(step_seconds, (int, float)) or step_seconds < 0:
        raise BadArguments(f"step_seconds must be a number >= 0, got {step_seconds!r}")
    if webhook_url is not None:
        webhook.check_url(webhook_url)  # WebhookRefused before any work unless its host:port is allowed
    started = time.perf_counter()
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        progress = {"current": step, "total": steps}
        self.update_state(state="PROGRESS", meta=progress)
        if channel:
            store().publish(channel, json.dumps({"id": self.request.id, **progress}))
    result = {"steps": steps, "seconds": round(time.perf_counter() - started, 2)}  # as it ran
    if webhook_url:  # signed, no redirects; WebhookFailed (the task's failure) says why it did not arrive
        webhook.deliver(webhook_url, {"id": self.request.id, "state": "SUCCESS", "result": result,
                                      "finished_at": time.time()})
    return result


# ---- lesson 04: a link that adapts one task's result to the next one's argument --------


@app.task(throws=(BadArguments,))
def pick(record, key):
    """In a chain, pass one field on: `summarise` returns {"summary": ...}, the next task wants the text."""
    if not isinstance(record, dict) or key not in record:
        raise BadArguments(f"pick needs a dict with {key!r}, got {record!r}")
    return record[key]


# ---- lesson 08: many LLM calls in one task ----------------------------------------------


async def ask_at_most(concurrency, prompts, headers=lambda index: {}):
    """Ask every prompt, at most `concurrency` calls at a time (lesson 02, inside a task)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def ask(index, prompt):
        async with semaphore:  # at most `concurrency` in flight
            return await _ask(prompt, headers=headers(index), max_tokens=20)

    calls = [asyncio.ensure_future(ask(index, prompt))
             for index, prompt in enumerate(prompts)]
    try:
        return await asyncio.gather(*calls)
    except BaseException:
        for call in calls:  # gather leaves the rest running
            call.cancel()
        raise


def where_it_runs() -> dict:
    """The process, thread and event loop running this task (lesson 08 counts them)."""
    return {"pid": os.getpid(), "thread": threading.current_thread().name,
            "loop": id(_event_loop())}


@app.task(**LLM_TASK)
def ask_all(self, prompts, concurrency=10, latency=None, fail_once=()):
    """Ask every prompt in ONE task, at most `concurrency` calls at a time.

    One call that fails fails the task, and its retry asks every prompt again. `latency` asks
    the simulator to take exactly that many seconds per call; the prompts at the indexes in
    `fail_once` fail their first call (a 500). A real server ignores both.
    """
    if not isinstance(prompts, list) or not prompts:
        raise BadArguments(f"prompts must be a non-empty list, got {prompts!r}")
    prompts = [_text(prompt, "each prompt") for prompt in prompts]
    if not isinstance(concurrency, int) or concurrency < 1:
        raise BadArguments(f"concurrency must be a positive integer, got {concurrency!r}")
    if latency is not None and not (isinstance(latency, (int, float)) and 0 <= latency <= 600):
        raise BadArguments(f"latency must be seconds from 0 to 600, got {latency!r}")
    if not isinstance(fail_once, (list, tuple)) or not all(isinstance(n, int) for n in fail_once):
        raise BadArguments(f"fail_once must be a list of indexes, got {fail_once!r}")

    def headers(index):
        chosen = {} if latency is None else {"x-sim-latency": str(latency)}
        if index in fail_once:  # this prompt's first call gets a 500
            chosen |= {"x-sim-fail-first": "1", "x-sim-fail-key": f"{self.request.id}-{index}"}
        return chosen

    answers = call_llm(self, ask_at_most(concurrency, prompts, headers))
    return {"answers": answers, "attempts": self.request.retries + 1, **where_it_runs()}
