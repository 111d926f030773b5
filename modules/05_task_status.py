"""Lesson 05: task status

Run:  python modules/05_task_status.py      (--no-pause runs straight through, --list shows the steps)
Second terminal (optional): make worker      (that is: celery -A course worker --loglevel=info -Q high,default,low)
You learn: the states a Celery task goes through, why an unknown id reads PENDING, how a task
reports progress, the submit-then-poll API a web app builds on it, polling vs webhooks vs pushed
events, and what failure, cancelling and result expiry look like from the client.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.
"""
import json
import time
import uuid

from celery import states
from celery.result import AsyncResult
from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from course import runner as lesson
from course.jobs import tasks, webhook
from course.jobs.celery_app import app
from course.runner import Result, figures_table, rows_table, timer

STEP_SECONDS = 0.3  # how long one step of a demo report takes
POLL_EVERY = 0.1  # seconds between two status checks
RECORD_SECONDS = int(app.conf.result_expires)  # remember a submitted id as long as its result is kept

MEANINGS = {
    "PENDING": "no state stored: queued, not started yet, or an id nobody ever sent",
    "STARTED": "a worker took it (stored only with task_track_started=True)",
    "PROGRESS": "a state of our own, set by the task with update_state(meta=...)",
    "RETRY": "it failed and will run again after a countdown",
    "SUCCESS": "done: result is the return value",
    "FAILURE": "it raised: result is the exception, traceback its text",
    "REVOKED": "cancelled with revoke(), before or while it ran",
}


def read(task_id):
    """(state, info) of a task, from one read of the result backend."""
    meta = AsyncResult(task_id).backend.get_task_meta(task_id, cache=False)
    return meta["status"], meta["result"]


def poll(result, every=POLL_EVERY, timeout=60):
    """Yield (state, info) every `every` seconds until the task is done (its last state included)."""
    deadline = time.monotonic() + timeout
    while True:
        state, info = read(result.id)
        yield state, info
        if state in states.READY_STATES:
            return
        if time.monotonic() > deadline:
            raise lesson.Stop(f"Task {result.id} is still {state} after {timeout} s. "
                              f"Is a worker running? Check with: python -m course.doctor")
        time.sleep(every)


def submit(redis, task, *args, **options):
    """Send a task and remember its id, so a status check can tell "unknown" from "waiting"."""
    result = task.apply_async(args, **options)
    redis.set(f"course:submitted:{result.id}", task.name, ex=RECORD_SECONDS)
    return result.id


def status(redis, task_id):
    """What GET /jobs/<id> of a web API returns: a small JSON-ready dict."""
    if not redis.exists(f"course:submitted:{task_id}"):
        return {"state": "UNKNOWN", "progress": None, "result": "no such job (HTTP 404)"}
    state, info = read(task_id)
    return {
        "state": state,
        "progress": info if state == "PROGRESS" else None,
        "result": info if state == states.SUCCESS else repr(info) if state == states.FAILURE else None,
    }


def states_seen_live(worker):
    """The states, seen live

    Four tasks at once, each read every 20 ms: a report that reports progress, an LLM call whose
    first three attempts fail and are retried, a task that raises, and a report we cancel mid-way.
    Each row is the sequence of states a client polling the task saw. Each task is sent with a
    half-second countdown, so even an idle worker leaves it PENDING long enough to see; a state
    shorter than 20 ms (a retry with a countdown near 0) can still slip between two reads.
    """
    jobs = {
        "long_report": tasks.long_report.apply_async((4, STEP_SECONDS), countdown=0.5),
        "flaky_llm_call": tasks.flaky_llm_call.apply_async((f"lesson05-{uuid.uuid4()}", 3), countdown=0.5),
        "failing_task": tasks.failing_task.apply_async(countdown=0.5),
        "long_report, revoked": tasks.long_report.apply_async((20, STEP_SECONDS), countdown=0.5),
    }
    seen = {name: [] for name in jobs}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for name, result in jobs.items():
            state = result.state
            if not seen[name] or seen[name][-1] != state:
                seen[name].append(state)
        if seen["long_report, revoked"][-1] == "PROGRESS":
            jobs["long_report, revoked"].revoke(terminate=True)  # cancel it once it is running
        if all(history[-1] in states.READY_STATES for history in seen.values()):
            break
        time.sleep(0.02)

    every_state = {state for history in seen.values() for state in history}
    first_pending = sum(history[0] == "PENDING" for history in seen.values())
    sequences = [{"task": name, "states seen, in order": " → ".join(seen[name])} for name in jobs]
    meanings = [{"state": state, "meaning": meaning, "seen": "yes" if state in every_state else "no"}
                for state, meaning in MEANINGS.items()]
    return Result(
        figures={"sequences": seen, "states_seen": sorted(every_state), "first_pending": first_pending,
                 "worker_started_by_lesson": worker.started_here},
        view=Group(rows_table(sequences), rows_table(meanings)),
        note=f"{len(every_state)} of the {len(MEANINGS)} states seen in one run; {first_pending} of {len(jobs)} "
             f"tasks read PENDING first: the backend knows nothing of a task until a worker writes to it.",
    )


@lesson.shows(submit, status)
def unknown_or_waiting(redis, worker):
    """The PENDING trap: Celery cannot tell "unknown" from "waiting"

    `AsyncResult(id).state` reads the result backend, and a task has no entry there until a
    worker starts it. So a queued task and an id nobody ever sent (a typo, an old link) both
    read PENDING. `result_extended=True` adds the task's name once it started, which does not
    help with queued tasks. What helps: remember each id you submit, as `submit()` does.
    """
    queued = submit(redis, tasks.add, 2, 3, queue="lesson05-nobody-listens")  # it just waits
    finished = submit(redis, tasks.add, 1, 1)
    list(poll(AsyncResult(finished)))
    rows = []
    for what, task_id in [("queued", queued), ("finished", finished), ("never sent", "no-such-id")]:
        result = AsyncResult(task_id)
        rows.append({"task": what, "AsyncResult.state": result.state, "result.name": result.name,
                     "submitted record": bool(redis.exists(f"course:submitted:{task_id}")),
                     "status()": status(redis, task_id)["state"]})
    redis.delete("lesson05-nobody-listens")  # the queue is a Redis list: drop the waiting message

    by_task = {row["task"]: row for row in rows}
    return Result(
        figures={"unknown_state": by_task["never sent"]["AsyncResult.state"],
                 "queued_state": by_task["queued"]["AsyncResult.state"],
                 "unknown_status": by_task["never sent"]["status()"],
                 "queued_status": by_task["queued"]["status()"],
                 "finished_name": by_task["finished"]["result.name"]},
        view=rows_table(rows),
        note="Same PENDING for the queued task and the made-up id; our own record tells them apart.",
    )


def progress_with_update_state(worker):
    """Progress: the task writes it, the client polls it

    Inside the task, `self.update_state(state="PROGRESS", meta={"current": 3, "total": 20})`
    overwrites the task's entry in the backend. The client reads it like any state and draws it.
    An update the client does not poll in time is simply overwritten by the next one.
    """
    steps = 20
    result = tasks.long_report.delay(steps, STEP_SECONDS / 2)
    polls, updates_seen, shown = 0, set(), 0
    with lesson.progress_bar("long_report", total=steps) as advance:
        for state, info in poll(result, every=POLL_EVERY):
            polls += 1
            if state == "PROGRESS":
                updates_seen.add(info["current"])
                advance(info["current"] - shown)
                shown = info["current"]
        advance(steps - shown)

    return Result(
        figures={"steps": steps, "progress_updates_seen": len(updates_seen), "polls": polls,
                 "poll_interval_s": POLL_EVERY, "step_s": STEP_SECONDS / 2, "final_state": state},
        note=f"{polls} polls every {POLL_EVERY} s saw {len(updates_seen)} of {steps} progress updates; "
             f"the task ended in {state}.",
    )


def submit_then_poll(redis, worker):
    """The submit-then-poll API

    A web API never waits for the job: POST /jobs calls `submit()` and answers with the id at
    once; the browser then calls GET /jobs/<id>, which returns `status(id)`, every second or so
    until the state is final. These are the dicts it would send, as the job went on.
    """
    with timer() as submitting:
        task_id = submit(redis, tasks.long_report, 5, STEP_SECONDS)
    start = time.perf_counter()
    responses = []
    while not responses or responses[-1]["state"] not in states.READY_STATES:
        if time.perf_counter() - start > 60:
            raise lesson.Stop("The job did not finish within 60 s. Is a worker running? python -m course.doctor")
        responses.append({"after_s": round(time.perf_counter() - start, 2), **status(redis, task_id)})
        time.sleep(4 * POLL_EVERY)

    return Result(
        figures={"submit_ms": submitting.seconds * 1000, "responses": len(responses),
                 "states": [r["state"] for r in responses], "final": responses[-1]},
        view=rows_table(responses, title=f"GET /jobs/{task_id}"),
        note=f"submit() returned the id after {submitting.seconds * 1000:.1f} ms; "
             f"{len(responses)} status calls followed it to {responses[-1]['state']}.",
    )


def polling_vs_webhook(worker):
    """Polling vs a webhook

    Polling asks again and again, and notices the end only at its next request. With a webhook
    the task calls a URL of ours when it is done: one request, right away. Here one job does
    both: the task POSTs to a small HTTP server on 127.0.0.1, and we also poll it every 0.5 s.
    """
    with webhook.receiver() as hook:
        result = tasks.report_with_updates.delay(5, STEP_SECONDS, webhook_url=hook.url)
        polls = len(list(poll(result, every=0.5)))
        noticed_at = time.time()
        call = hook.wait(timeout=10)
    if call is None:
        raise lesson.Stop("The webhook never arrived. See the worker's log: .course-data/worker.log")

    finished_at = call["body"]["finished_at"]
    rows = {"webhook": call["received_at"] - finished_at, "polling every 0.5 s": noticed_at - finished_at}
    return Result(
        figures={"polls": polls, "webhook_calls": len(hook.calls), "webhook_delay_s": rows["webhook"],
                 "polling_delay_s": rows["polling every 0.5 s"], "webhook_body": call["body"]},
        view=lesson.timings(rows, title="from the end of the work to the client knowing"),
        note=f"Polling made {polls} requests; the webhook made {len(hook.calls)}, "
             f"{rows['webhook'] * 1000:.0f} ms after the work ended.",
    )


def pushed_progress_events(redis, worker):
    """Pushed events: progress as it happens

    A webhook tells us the end; for progress the task can publish each step to a Redis pub/sub
    channel, and whoever subscribed gets it at once. A web API forwards these messages to the
    browser as server-sent events. Celery's own task events (Flower, `celery events`) work the
    same way. Here we subscribe, and poll the same task every 0.1 s to compare.
    """
    channel = f"lesson05:progress:{uuid.uuid4().hex}"
    messages = []
    subscriber = redis.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(**{channel: lambda message: messages.append(json.loads(message["data"]))})
    listening = subscriber.run_in_thread(sleep_time=0.01, daemon=True)

    steps = 10
    result = tasks.report_with_updates.delay(steps, STEP_SECONDS, channel=channel)
    polls, polls_with_news, last = 0, 0, None  # a poll has news when its answer differs from the last
    for state, info in poll(result, every=POLL_EVERY):
        polls += 1
        polls_with_news += (state, info) != last
        last = (state, info)
    deadline = time.monotonic() + 2
    while len(messages) < steps and time.monotonic() < deadline:  # the last message may be in flight
        time.sleep(0.01)
    listening.stop()  # the thread unsubscribes and closes its connection
    listening.join()

    messages_with_news = len({message["current"] for message in messages})
    return Result(
        figures={"steps": steps, "messages_received": len(messages), "messages_with_news": messages_with_news,
                 "polls": polls, "polls_with_news": polls_with_news},
        view=rows_table([
            {"way": "pushed (pub/sub)", "received": len(messages), "with news": messages_with_news},
            {"way": f"polling every {POLL_EVERY} s", "received": polls, "with news": polls_with_news},
        ]),
        note=f"{len(messages)} pushed messages for {steps} steps; {polls - polls_with_news} of the "
             f"{polls} polls brought nothing new.",
    )


def failure_keeps_the_traceback(worker):
    """A failure keeps the error and its traceback

    When a task raises, the worker stores FAILURE, the exception (type and message) and the
    traceback text. `result.get()` would raise the exception again here; with propagate=False
    we get it as a value, and `result.traceback` tells where in the task it happened.
    """
    result = tasks.failing_task.delay()
    list(poll(result))
    result.get(propagate=False)
    error, traceback_text = result.result, result.traceback or ""
    last_lines = traceback_text.strip().splitlines()[-3:]

    figures = {"state": result.state, "exception": type(error).__name__, "message": str(error),
               "traceback_lines": len(traceback_text.splitlines())}
    return Result(
        figures=figures | {"last_line": last_lines[-1] if last_lines else ""},
        view=Group(figures_table(figures),
                   Panel(Text("\n".join(last_lines)), title="result.traceback, last lines", style="red")),
        note="The client gets the error without looking at the worker: show the message, log the traceback.",
    )


def cancel_with_revoke(worker):
    """Cancel with revoke

    `result.revoke()` tells every worker to skip the task; with terminate=True a worker already
    running it kills the process that runs it. Here a 20-step report is cancelled after its
    fifth step. Killing is abrupt: the task cannot clean up, so keep tasks safe to stop.
    """
    steps = 20
    result = tasks.long_report.delay(steps, STEP_SECONDS)
    reached = 0
    for state, info in poll(result):
        if state == "PROGRESS":
            reached = info["current"]
        if reached >= 5:
            break
    result.revoke(terminate=True)
    with timer() as stopping:
        final = [state for state, _ in poll(result, every=0.02)][-1]
    time.sleep(3 * STEP_SECONDS)  # had it kept running, it would have reported more steps by now
    after = read(result.id)[0]

    return Result(
        figures={"steps": steps, "progress_reached": reached, "state": final, "state_a_moment_later": after,
                 "revoke_to_revoked_s": stopping.seconds},
        note=f"Stopped at step {reached} of {steps}; {final} {stopping.seconds * 1000:.0f} ms after revoke(), "
             f"and still {after} a moment later.",
    )


def result_expiry(app, redis, worker):
    """Results expire

    Each result is a Redis key, `celery-task-meta-<id>`, with a time to live: `result_expires`
    in the configuration. Past it the key is gone and the task reads PENDING again, just like
    an unknown id. To see it without waiting a day we shorten one key's TTL to 2 s with EXPIRE.
    """
    result = tasks.add.delay(2, 2)
    list(poll(result))
    key = f"celery-task-meta-{result.id}"
    ttl, before = redis.ttl(key), read(result.id)[0]

    redis.expire(key, 2)  # what result_expires=2 would have done
    with timer() as waited:
        while redis.exists(key):
            time.sleep(POLL_EVERY)
    after = AsyncResult(result.id).state

    return Result(
        figures={"result_expires_s": app.conf.result_expires, "ttl_s": ttl, "state_before": before,
                 "state_after_expiry": after, "waited_s": waited.seconds},
        view=figures_table({"result_expires (configured)": f"{app.conf.result_expires} s",
                            f"TTL of {key}": f"{ttl} s",
                            "state before": before,
                            f"after EXPIRE 2 s, waited {waited.seconds:.1f} s": f"state {after}"}),
        note="Read results (or copy what you keep to your own database) before they expire.",
    )


STEPS = [
    states_seen_live,
    unknown_or_waiting,
    progress_with_update_state,
    submit_then_poll,
    polling_vs_webhook,
    pushed_progress_events,
    failure_keeps_the_traceback,
    cancel_with_revoke,
    result_expiry,
]

if __name__ == "__main__":
    lesson.run(STEPS)
