"""Lesson 04: background tasks

Run:  make lesson N=04      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
Second terminal (optional): make worker
You learn: how `delay()` hands work to a worker and returns at once, LLM calls as background tasks,
retries with exponential backoff and jitter, chains, groups and chords, and periodic tasks with beat.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.

Recap:
- delay() only writes a message: the caller gets an id at once and the work happens elsewhere.
- Retry what may work next time (429, 5xx, timeouts) with backoff and jitter; fail at once on
  what never will (bad arguments, a refused key).
- chain for steps that depend on each other, group for independent ones, chord to combine.
- Periodic work comes from exactly one beat; a worker runs it.
"""
import time
import uuid

from celery import chain, chord, group, states

from course.jobs import tasks
from course.jobs.beat import running_beat
from course.runner import run, shows, timer
from course.samples import ARTICLE, REVIEWS

HEARTBEAT_COUNT = "course:heartbeat:count"  # the heartbeat task adds one each run


def delay_returns_at_once(worker):
    """`delay()` returns at once; the work goes on in the worker

    `delay()` only writes a message to Redis and hands back an `AsyncResult`: a ticket with the
    task's id. The LLM call happens in the worker, while this process is free. `.get()` waits
    for the result; a web app would return the id instead and let the client ask (lesson 05).

    Result: delay() returned after {delay_ms} with the task {state_right_after_delay}; the
    summary came {waiting_for_the_result_s} later.
    """
    with timer() as sending:
        result = tasks.summarise.delay(ARTICLE)
    state_right_after = result.state

    with timer() as waiting:
        summary = result.get(timeout=60)

    return {"delay_ms": sending.seconds * 1000,
            "state_right_after_delay": state_right_after,
            "waiting_for_the_result_s": waiting.seconds,
            "summary": summary["summary"],
            "_worker_pid": worker.process.pid if worker.process else None}


def ai_tasks(worker):
    """LLM calls as background tasks

    Sentiment, summary, keywords, embeddings: each task makes one LLM call (the embeddings
    task, one per batch of texts) in the worker and returns a small JSON result. Here we wait
    for each in turn, to see what each costs.

    Result: {count} background tasks, {total_s} in all, one after another.
    """
    jobs = [(tasks.analyse_sentiment, REVIEWS[1]),
            (tasks.summarise, ARTICLE),
            (tasks.extract_keywords, ARTICLE),
            (tasks.embed_batch, REVIEWS)]
    rows = []
    for task, argument in jobs:
        with timer() as took:
            answer = task.delay(argument).get(timeout=60)
        rows.append({"task": task.name.rpartition(".")[2],
                     "took_s": took.seconds, "result": answer})

    return {"tasks": rows, "count": len(rows),
            "total_s": sum(row["took_s"] for row in rows)}


def states_until_done(result, every=0.01, seconds=60):
    """Read the task's state every 10 ms until it is done; keep each change."""
    start, changes = time.monotonic(), []
    while not changes or changes[-1]["state"] not in states.READY_STATES:
        state = result.state
        if not changes or state != changes[-1]["state"]:
            changes.append({"at_s": time.monotonic() - start, "state": state})
        if time.monotonic() - start > seconds:
            raise TimeoutError(f"the task was still {state} after {seconds} s")
        time.sleep(every)
    return changes


@shows(tasks.call_llm)
def retries_with_backoff(worker):
    """Retries with exponential backoff and jitter

    LLM APIs fail now and then (500, 429, timeouts). The task retries on those errors only,
    waits longer after each failure (exponential backoff), and picks a random part of that wait
    (jitter), so tasks that failed together do not all come back together. Here the simulated
    LLM fails the first two calls with a 500, on purpose, and we read the state every 10 ms.

    Result: it succeeded on attempt {attempts}. Polling saw {retries_seen} of its
    {retries} retries: a state shorter than a poll can slip between two reads.
    """
    result = tasks.flaky_llm_call.delay(f"lesson-04-{uuid.uuid4()}", 2)
    changes = states_until_done(result)
    outcome = result.get(timeout=60)

    return {"states_seen": changes, "attempts": outcome["attempts"],
            "retries": outcome["attempts"] - 1,
            "retries_seen": sum(c["state"] == "RETRY" for c in changes)}


def chain_of_dependent_tasks(worker):
    """A chain: each task gets the previous one's result

    The keywords are taken from the summary, so the summary must come first. In a chain each
    link's return value becomes the next link's first argument; `pick` takes the text out of
    `summarise`'s {"summary": ...}. The worker runs the links in order.

    Result: {links} links, one after another, in {took_s}.
    """
    links = [tasks.summarise.s(ARTICLE), tasks.pick.s("summary"),
             tasks.extract_keywords.s()]
    with timer() as took:
        result = chain(*links).apply_async()  # the last link's result
        keywords = result.get(timeout=60)
    summary = result.parent.get()  # the link before: the summary text

    return {"summary": summary, "keywords": keywords["keywords"],
            "links": len(links), "took_s": took.seconds}


def group_runs_in_parallel(app, worker):
    """A group: independent tasks at the same time

    Sentiment, summary and keywords do not depend on each other. A group sends them all at
    once; the worker's pool slots (threads here, processes under prefork) run them side by
    side, so with enough slots the group takes about the time of the slowest task.

    Result: the group was {speedup_x} faster, on a worker with {pool_slots} slot(s).
    """
    analyses = [tasks.analyse_sentiment.s(ARTICLE),
                tasks.summarise.s(ARTICLE),
                tasks.extract_keywords.s(ARTICLE)]

    with timer() as one_by_one:
        for signature in analyses:
            signature.delay().get(timeout=60)

    with timer() as together:
        pending = group(analyses).apply_async()
        answers = pending.get(timeout=60, interval=0.05)  # poll every 50 ms

    inspector = app.control.inspect(destination=worker.names, timeout=1)
    pools = [s["pool"] for s in (inspector.stats() or {}).values()]
    return {"one_by_one_s": one_by_one.seconds, "group_s": together.seconds,
            "tasks": len(answers),
            "speedup_x": one_by_one.seconds / together.seconds,
            "pool_slots": sum(p["max-concurrency"] for p in pools)}


def chord_collects_the_group(worker):
    """A chord: a group, then one callback with all its results

    The callback starts when every task of the group has finished, and gets their results as
    one list, in order. `chord(header)(callback)` sends it all and returns one AsyncResult: the
    callback's.

    Result: combine_analysis got a list of {results_in_callback} results, {took_s} after
    the send.
    """
    header = [tasks.analyse_sentiment.s(ARTICLE),
              tasks.summarise.s(ARTICLE),
              tasks.extract_keywords.s(ARTICLE)]
    callback = tasks.combine_analysis.s()
    with timer() as took:
        combined = chord(header)(callback).get(timeout=60)

    return {"header_tasks": len(header),
            "results_in_callback": combined["parts"],
            "combined_keys": [key for key in combined if key != "parts"],
            "took_s": took.seconds}


def periodic_tasks_with_beat(app, redis, worker):
    """Periodic tasks: beat sends them, a worker runs them

    `celery -A course beat` reads `beat_schedule` and sends each task when it is due; here a
    heartbeat that counts itself in Redis. Beat must run as ONE instance: two beats send every
    task twice. We run beat for a few intervals and watch the counter.

    Result: beat sent the heartbeat {fired} times, about one interval apart.
    """
    entry = next(e for e in app.conf.beat_schedule.values()
                 if e["task"] == tasks.heartbeat.name)
    interval = float(entry["schedule"])
    fired_at, seen = [], int(redis.get(HEARTBEAT_COUNT) or 0)

    with running_beat(redis, interval) as beat:
        start = time.monotonic()
        while len(fired_at) < 2 and time.monotonic() - start < 4 * interval:
            count = int(redis.get(HEARTBEAT_COUNT) or 0)
            fired_at += [time.monotonic() - start] * (count - seen)
            seen = count
            time.sleep(0.1)

    gaps = [later - at for at, later in zip(fired_at, fired_at[1:])]
    return {"interval_s": interval, "fired": len(fired_at),
            "fired_at_s": fired_at,
            "measured_gap_s": gaps[0] if gaps else None,
            "_beat_pid": beat.pid if beat else None}


STEPS = [
    delay_returns_at_once,
    ai_tasks,
    retries_with_backoff,
    chain_of_dependent_tasks,
    group_runs_in_parallel,
    chord_collects_the_group,
    periodic_tasks_with_beat,
]

if __name__ == "__main__":
    run(STEPS)
