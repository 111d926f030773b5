"""Lesson 04: background tasks

Run:  python modules/04_background_task.py      (--no-pause runs straight through, --list shows the steps)
Second terminal (optional): make worker      (that is: celery -A course worker --loglevel=info -Q high,default,low)
You learn: how `delay()` hands work to a worker and returns at once, LLM calls as background tasks,
retries with exponential backoff and jitter, chains, groups and chords, and periodic tasks with beat.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.
"""
import time
import uuid

import celery.exceptions
from celery import chain, chord, group, states

from course import runner as lesson
from course.jobs import tasks
from course.jobs.beat import running_beat
from course.runner import Result, rows_table, timer, timings
from course.samples import ARTICLE, REVIEWS

HEARTBEAT_COUNT = "course:heartbeat:count"  # the `heartbeat` task adds one each time it runs


def wait(result, seconds=60):
    """The task's (or group's) return value, or a clear stop when no worker answers in time."""
    try:
        return result.get(timeout=seconds, interval=0.05)  # a group polls: every 50 ms, not the default 0.5 s
    except celery.exceptions.TimeoutError:
        raise lesson.Stop(f"No result within {seconds} s: no worker consumes the queue. "
                          "Check with: python -m course.doctor")


def state_changes(result, every=0.01, seconds=60):
    """Poll a task's state until it is done; return (seconds since the start, state) per change."""
    start, changes = time.monotonic(), []
    while not changes or changes[-1][1] not in states.READY_STATES:
        if time.monotonic() - start > seconds:
            raise lesson.Stop(f"The task did not finish within {seconds} s. Check with: python -m course.doctor")
        state = result.state
        if not changes or state != changes[-1][1]:
            changes.append((time.monotonic() - start, state))
        time.sleep(every)
    return changes


def delay_returns_at_once(worker):
    """`delay()` returns at once; the work goes on in the worker

    `delay()` only writes a message to Redis and hands back an `AsyncResult`: a ticket with the
    task's id. The LLM call happens in the worker, while this process is free. `.get()` waits
    for the result; a web app would return the id instead and let the client ask later (lesson 05).
    """
    with timer() as sending:
        result = tasks.summarise.delay(ARTICLE)
    state_right_after = result.state

    with timer() as waiting:
        summary = wait(result)

    until_result = sending.seconds + waiting.seconds
    return Result(
        figures={"delay_ms": sending.seconds * 1000, "result_s": until_result,
                 "state_right_after_delay": state_right_after, "task_id": result.id,
                 "worker_pid": worker.process.pid if worker.started_here else None},
        view=timings({"delay() returned": sending.seconds, "result arrived": until_result}),
        note=f"delay() took {sending.seconds * 1000:.1f} ms; the state was {state_right_after}; the summary "
             f"arrived after {until_result:.2f} s: {summary['summary']!r}",
    )


def ai_tasks(worker):
    """LLM calls as background tasks: sentiment, summary, keywords, embeddings

    Each task makes one (or, for the embeddings, a few) LLM calls in the worker and returns a
    small JSON result. Here we wait for each in turn, to see what each one costs.
    """
    jobs = [(tasks.analyse_sentiment, REVIEWS[1]), (tasks.summarise, ARTICLE),
            (tasks.extract_keywords, ARTICLE), (tasks.embed_batch, REVIEWS)]
    rows = []
    for task, text in jobs:
        with timer() as took:
            answer = wait(task.delay(text))
        rows.append({"task": task.name.rpartition(".")[2], "seconds": took.seconds, "result": answer})

    return Result(
        figures={row["task"] + "_s": row["seconds"] for row in rows},
        view=rows_table(rows),
        note=f"{len(rows)} background tasks, {sum(r['seconds'] for r in rows):.2f} s in all, one after another.",
    )


@lesson.shows(tasks.flaky_llm_call.run)
def retries_with_backoff(worker):
    """Retries with exponential backoff and jitter

    LLM APIs fail now and then (500, 429, timeouts). `autoretry_for` retries the task on those
    errors only; `retry_backoff` doubles the wait each time (1 s, 2 s, 4 s, ...); `retry_jitter`
    waits a random whole number of seconds up to that instead, so a thousand tasks that failed
    together do not all come back together; `max_retries` gives up after five retries. Here the
    simulated LLM answers 500 to the first two calls, on purpose, and we watch the task's state
    from this side.
    """
    result = tasks.flaky_llm_call.delay(key=f"lesson-04-{uuid.uuid4()}", fail_first=2)
    changes = state_changes(result)
    outcome = wait(result)

    backoff = sum(later - at for (at, state), (later, _) in zip(changes, changes[1:]) if state == states.RETRY)
    retries_seen = sum(state == states.RETRY for _, state in changes)
    return Result(
        figures={"attempts": outcome["attempts"], "retries_seen": retries_seen,
                 "backoff_waited_s": backoff, "total_s": changes[-1][0]},
        view=rows_table([{"at": f"{at:.2f} s", "state": state} for at, state in changes]),
        note=f"It succeeded on attempt {outcome['attempts']}, after {backoff:.2f} s spent waiting "
             f"between attempts (in RETRY), {changes[-1][0]:.2f} s in all.",
    )


def chain_of_dependent_tasks(worker):
    """A chain: each task gets the previous one's result

    The keywords are taken from the summary, so the summary must come first. In a chain each
    link's return value becomes the next link's first argument; `pick` takes the text out of
    `summarise`'s {"summary": ...}. The worker runs the links in order; this process just waits.
    """
    workflow = chain(tasks.summarise.s(ARTICLE), tasks.pick.s("summary"), tasks.extract_keywords.s())
    with timer() as took:
        result = workflow.apply_async()  # the AsyncResult of the last link
        keywords = wait(result)
    summary = result.parent.get()  # the link before: the summary text

    return Result(
        figures={"links": 3, "total_s": took.seconds, "summary": summary, "keywords": keywords["keywords"]},
        view=lesson.figures_table({"summary": summary, "keywords": keywords["keywords"]}),
        note=f"Three links, one after another, in {took.seconds:.2f} s.",
    )


def group_runs_in_parallel(app, worker):
    """A group: independent tasks at the same time

    Sentiment, summary and keywords do not depend on each other. A group sends all three at
    once; the worker's pool processes run them side by side, so the group takes about the time
    of the slowest one (when there are at least as many processes as tasks).
    """
    analyses = [tasks.analyse_sentiment.s(ARTICLE), tasks.summarise.s(ARTICLE), tasks.extract_keywords.s(ARTICLE)]

    with timer() as one_by_one:
        for signature in analyses:
            wait(signature.delay())

    with timer() as together:
        answers = wait(group(analyses).apply_async())

    stats = app.control.inspect(destination=worker.names, timeout=1).stats() or {}
    processes = sum(info["pool"]["max-concurrency"] for info in stats.values())
    return Result(
        figures={"tasks": len(answers), "one_by_one_s": one_by_one.seconds, "group_s": together.seconds,
                 "speedup": one_by_one.seconds / together.seconds, "pool_processes": processes},
        view=timings({"one after another": one_by_one.seconds, "group": together.seconds}),
        note=f"The group was {one_by_one.seconds / together.seconds:.1f}x faster, "
             f"on {processes} pool process(es).",
    )


def chord_collects_the_group(worker):
    """A chord: a group, then one callback with all its results

    The callback starts when every task of the group has finished, and gets their results as
    one list, in order. `chord(header)(callback)` sends it all and returns one AsyncResult: the
    callback's.
    """
    header = [tasks.analyse_sentiment.s(ARTICLE), tasks.summarise.s(ARTICLE), tasks.extract_keywords.s(ARTICLE)]
    with timer() as took:
        result = chord(header)(tasks.combine_analysis.s())
        combined = wait(result)

    return Result(
        figures={"header_tasks": len(header), "results_in_callback": combined["parts"], "total_s": took.seconds},
        view=lesson.figures_table(combined),
        note=f"combine_analysis got a list of {combined['parts']} results, {took.seconds:.2f} s after the send.",
    )


def periodic_tasks_with_beat(app, redis, worker):
    """Periodic tasks: beat sends them, a worker runs them

    `celery -A course beat` reads `beat_schedule` and sends each task when it is due; here a
    heartbeat that counts itself in Redis. Beat must run as ONE instance: two beats send every
    task twice. (The worker runs them; beat itself does no work.) We run beat for a few seconds
    and watch the counter.
    """
    entry = next(e for e in app.conf.beat_schedule.values() if e["task"] == tasks.heartbeat.name)
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
    return Result(
        figures={"interval_s": interval, "fired": len(fired_at), "fired_at_s": [round(t, 2) for t in fired_at],
                 "measured_gap_s": gaps[0] if gaps else None, "heartbeat_count": seen,
                 "beat_pid": beat.pid if beat else None},
        view=rows_table([{"heartbeat": n, "seen at": f"{t:.2f} s"} for n, t in enumerate(fired_at, 1)]),
        note=f"Scheduled every {interval:g} s; fired {len(fired_at)} times"
             + (f", {gaps[0]:.2f} s apart" if gaps else "") + f". The counter in Redis is now {seen}.",
    )


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
    lesson.run(STEPS)
