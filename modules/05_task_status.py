"""Lesson 05: task status

Run:  make lesson N=05      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
Second terminal (optional): make worker
You learn: the states a Celery task goes through, why an unknown id reads PENDING, how a task
reports progress, the submit-then-poll API a web app builds on it, polling vs webhooks vs pushed
events, and what failure, cancelling and result expiry look like from the client.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.

Recap:
- PENDING means "nothing stored": queued, or an id nobody sent. Record the ids you submit.
- A task reports progress with update_state; a client polls it, or is told (webhook, events).
- A web API answers a job at once with its id, and a status URL the client asks until done.
- Accept a webhook only when its signature checks out; refuse stale and replayed calls.
- Failures keep their traceback, revoke cancels, and results expire: copy what you keep.
"""
import json
import time
import uuid

from celery import states
from celery.result import AsyncResult

from course.jobs import tasks, webhook
from course.jobs.celery_app import app
from course.runner import Stop, progress_bar, run, shows, timer

STEP_SECONDS = 0.3  # how long one step of a demo report takes
POLL_EVERY = 0.1  # seconds between two status checks
RECORD_SECONDS = int(app.conf.result_expires)  # keep an id as long as its result


def read(task_id):
    """(state, info) of a task, from one read of the result backend."""
    meta = app.backend.get_task_meta(task_id, cache=False)
    return meta["status"], meta["result"]


def poll(task_id, every=POLL_EVERY, timeout=60):
    """Yield (state, info) every `every` seconds until the task is done."""
    deadline = time.monotonic() + timeout
    while True:
        state, info = read(task_id)
        yield state, info
        if state in states.READY_STATES:
            return
        if time.monotonic() > deadline:
            raise Stop(f"Task {task_id} is still {state} after {timeout} s. "
                       "Is a worker reading its queue? Check with: make doctor")
        time.sleep(every)


def states_seen_live(worker):
    """The states, seen live

    Three tasks at once, each read every 20 ms: a report that reports progress, an LLM call
    whose first three attempts fail and are retried, and a task that raises. Each row is the
    sequence of states a client polling the task saw. Each is sent with a half-second
    countdown, so it reads PENDING first, even on an idle worker.

    Result: {kinds_seen} states in one run; all {first_pending} tasks read PENDING first: the
    backend knows nothing of a task until a worker writes to it.
    """
    jobs = {
        "long_report": tasks.long_report.s(4, STEP_SECONDS),
        "flaky_llm_call": tasks.flaky_llm_call.s(f"l05-{uuid.uuid4()}", 3),
        "failing_task": tasks.failing_task.s(),
    }
    sent = {name: job.apply_async(countdown=0.5)
            for name, job in jobs.items()}
    seen, deadline = {name: [] for name in jobs}, time.monotonic() + 60
    while True:
        for name, result in sent.items():
            if not seen[name] or seen[name][-1] != result.state:
                seen[name].append(result.state)
        if all(seen[name][-1] in states.READY_STATES for name in seen):
            break
        if time.monotonic() > deadline:
            raise Stop("Still not done after 60 s. Check with: make doctor")
        time.sleep(0.02)

    return {"states_seen": [{"task": name, "states": " → ".join(history)}
                            for name, history in seen.items()],
            "kinds_seen": len(set().union(*seen.values())),
            "first_pending": sum(h[0] == "PENDING" for h in seen.values())}


def submit(redis, task, *args, **options):
    """Record the id, then send: a status check tells "unknown" from "waiting"."""
    task_id = str(uuid.uuid4())
    redis.set(f"course:submitted:{task_id}", task.name, ex=RECORD_SECONDS)
    task.apply_async(args, task_id=task_id, **options)
    return task_id


def status(redis, task_id):
    """What GET /jobs/<id> of a web API returns: a small JSON-ready dict."""
    if not redis.exists(f"course:submitted:{task_id}"):
        return {"state": "UNKNOWN", "progress": None, "result": None}
    state, info = read(task_id)
    return {"state": state,
            "progress": info if state == "PROGRESS" else None,
            "result": info if state == states.SUCCESS
            else repr(info) if state == states.FAILURE else None}


@shows(submit, status)
def unknown_or_waiting(redis, worker):
    """The PENDING trap: Celery cannot tell "unknown" from "waiting"

    `AsyncResult(id).state` reads the result backend, and a task has no entry there until a
    worker starts it. So a queued task and an id nobody ever sent (a typo, an old link) both
    read PENDING. What helps: remember each id you submit, before you send it.

    Result: the queued task read {queued_state} and the made-up id {unknown_state}; our
    record tells them apart: {queued_status} and {unknown_status}.
    """
    nobody = "lesson05-nobody-listens"
    queued = submit(redis, tasks.add, 2, 3, queue=nobody)  # it just waits
    unknown = "no-such-id"
    states_now = {"queued": AsyncResult(queued).state,
                  "unknown": AsyncResult(unknown).state}
    redis.delete(nobody)  # the queue is a Redis list: drop the message

    return {"queued_state": states_now["queued"],
            "unknown_state": states_now["unknown"],
            "queued_status": status(redis, queued)["state"],
            "unknown_status": status(redis, unknown)["state"]}


def progress_with_update_state(worker):
    """Progress: the task writes it, the client polls it

    Inside the task, `self.update_state(state="PROGRESS", meta={"current": 3, "total": 20})`
    overwrites the task's entry in the backend. The client reads it like any state and draws
    it. An update the client does not read in time is overwritten by the next one.

    Result: {polls} polls, one every {poll_interval_s}, saw {updates_seen} of {steps}
    updates (one every {step_s}); the task ended in {final_state}.
    """
    steps, step_seconds = 20, STEP_SECONDS / 2
    result = tasks.long_report.delay(steps, step_seconds)
    polls, seen, shown = 0, set(), 0
    with progress_bar("long_report", total=steps) as advance:
        for state, info in poll(result.id):
            polls += 1
            if state == "PROGRESS":
                seen.add(info["current"])
                advance(info["current"] - shown)
                shown = info["current"]

    return {"steps": steps, "step_s": step_seconds,
            "updates_seen": len(seen), "polls": polls,
            "poll_interval_s": POLL_EVERY, "final_state": state}


def submit_then_poll(redis, worker):
    """The submit-then-poll API

    A web API never waits for the job: POST /jobs calls `submit()` and answers with the id at
    once; the browser then calls GET /jobs/<id>, which returns `status(id)`, every second or so
    until the state is final. These are the answers it would send as the job went on.

    Result: submit() returned after {submit_ms}; {answers} status answers followed the job
    to {final_state}.
    """
    with timer() as submitting:
        task_id = submit(redis, tasks.long_report, 5, STEP_SECONDS)
    start, responses = time.perf_counter(), []
    for _ in poll(task_id, every=4 * POLL_EVERY):
        answer = status(redis, task_id)
        responses.append({"after_s": time.perf_counter() - start, **answer})

    return {"get_jobs_id": responses,
            "submit_ms": submitting.seconds * 1000,
            "answers": len(responses),
            "final_state": responses[-1]["state"]}


def polling_vs_webhook(worker):
    """Polling vs a webhook

    Polling asks again and again, and notices the end only at its next request. With a webhook
    the task calls a URL of ours when it is done: one signed request, right away. Here one job
    does both: the task POSTs to a small HTTP server on 127.0.0.1, and we also poll every 0.5 s.

    Result: polling made {polls} requests; the webhook made {webhook_calls}.
    """
    with webhook.receiver() as hook:
        result = tasks.report_with_updates.delay(
            5, STEP_SECONDS, webhook_url=hook.url)
        polls = len(list(poll(result.id, every=0.5)))
        noticed_at = time.time()
        call = hook.wait(timeout=10)
    if call is None:
        raise Stop("The webhook never arrived. See the worker's log: "
                   ".course-data/worker.log")

    finished_at = call["body"]["finished_at"]
    return {"webhook_s": call["received_at"] - finished_at,
            "polling_every_half_a_second_s": noticed_at - finished_at,
            "polls": polls, "webhook_calls": len(hook.accepted),
            "_webhook_body": call["body"]}


def forged_calls_are_refused(worker):
    """A webhook you can trust: signed, fresh, once

    Anyone who finds the URL can POST to it. So each delivery carries a signature: an HMAC of
    its time and body with a secret the worker and the receiver share. The receiver refuses a
    call without one, with a wrong one, signed too long ago, or already seen (a replay).

    Result: {accepted} call accepted, {refused} refused.
    """
    with webhook.receiver() as hook:
        tasks.report_with_updates.delay(1, 0, webhook_url=hook.url)
        genuine = hook.wait(timeout=10)
        hook.send_forged({"id": "fake", "state": "SUCCESS"})
        hook.send_forged({"id": "fake"}, how="wrong-secret")
        hook.send_forged({"id": "fake"}, how="stale")
        hook.replay(genuine)

    return {"calls": [{"call": n, "status": c["status"],
                       "reason": c["reason"] or "accepted"}
                      for n, c in enumerate(hook.calls, 1)],
            "accepted": len(hook.accepted), "refused": len(hook.rejected)}


def pushed_progress_events(redis, worker):
    """Pushed events: progress as it happens

    For progress, the task can publish each step to a Redis pub/sub channel, and whoever
    subscribed gets it at once. A web API forwards these messages to the browser as
    server-sent events (lesson 07). Here we subscribe, and poll the same task to compare.

    Result: {received} pushed messages for {steps} steps; {empty_polls} of the {polls}
    polls brought nothing new.
    """
    channel = f"lesson05:progress:{uuid.uuid4().hex}"
    messages = []

    def on_message(message):  # called by the subscriber's thread
        messages.append(json.loads(message["data"]))

    subscriber = redis.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(**{channel: on_message})
    listening = subscriber.run_in_thread(sleep_time=0.01, daemon=True)

    steps = 10
    result = tasks.report_with_updates.delay(
        steps, STEP_SECONDS, channel=channel)
    answers = list(poll(result.id))
    time.sleep(0.2)  # the last message may still be on its way
    listening.stop()
    listening.join()

    repeats = sum(a == before for a, before in zip(answers[1:], answers))
    return {"steps": steps, "received": len(messages),
            "polls": len(answers), "empty_polls": repeats}


def failure_keeps_the_traceback(worker):
    """A failure keeps the error and its traceback

    When a task raises, the worker stores FAILURE, the exception (type and message) and the
    traceback text. `result.get()` would raise the exception again here; with
    `propagate=False` we get it as a value, and `result.traceback` tells where it happened.

    Result: the client gets the error without looking at the worker: show the message, log
    the traceback.
    """
    result = tasks.failing_task.delay()
    result.get(timeout=60, propagate=False)
    error = result.result
    lines = (result.traceback or "").strip().splitlines()

    return {"state": result.state, "exception": type(error).__name__,
            "message": str(error), "traceback_lines": len(lines),
            "last_line": lines[-1] if lines else ""}


def cancel_with_revoke(worker):
    """Cancel with revoke

    `revoke()` tells every worker to skip the task; with `terminate=True` a worker already
    running it stops it where it runs (prefork kills its process; the course's thread pool
    raises an exception in its thread). Here a long report is cancelled after its fifth step.
    Stopping is abrupt, so keep tasks safe to stop.

    Result: stopped at step {progress_reached} of {steps}; {state} {revoke_to_revoked_ms}
    after revoke(), and still {state_a_moment_later} a moment later.
    """
    steps = 20
    result = tasks.long_report.delay(steps, STEP_SECONDS)
    reached = 0
    for state, info in poll(result.id):
        reached = info["current"] if state == "PROGRESS" else reached
        if reached >= 5:
            break
    result.revoke(terminate=True)
    with timer() as stopping:
        final = [state for state, _ in poll(result.id, every=0.02)][-1]
    time.sleep(3 * STEP_SECONDS)  # time enough for three more steps
    later = read(result.id)[0]

    return {"steps": steps, "progress_reached": reached, "state": final,
            "revoke_to_revoked_ms": stopping.seconds * 1000,
            "state_a_moment_later": later}


def result_expiry(app, redis, worker):
    """Results expire

    Each result is a Redis key, `celery-task-meta-<id>`, with a time to live: `result_expires`
    in the configuration. Past it the key is gone and the task reads PENDING again, just like
    an unknown id. To see it without waiting a day, we shorten one key's TTL with EXPIRE.

    Result: the result was {state_before} with {ttl_s} to live; after EXPIRE it was gone in
    {waited_s} and the task read {state_after_expiry} again.
    """
    result = tasks.add.delay(2, 2)
    result.get(timeout=60)
    key = f"celery-task-meta-{result.id}"
    ttl, before = redis.ttl(key), result.state

    redis.expire(key, 2)  # what result_expires=2 would have done
    with timer() as waited:
        while redis.exists(key):
            time.sleep(POLL_EVERY)

    return {"result_expires_s": app.conf.result_expires, "ttl_s": ttl,
            "state_before": before, "waited_s": waited.seconds,
            "state_after_expiry": AsyncResult(result.id).state}


STEPS = [
    states_seen_live,
    unknown_or_waiting,
    progress_with_update_state,
    submit_then_poll,
    polling_vs_webhook,
    forged_calls_are_refused,
    pushed_progress_events,
    failure_keeps_the_traceback,
    cancel_with_revoke,
    result_expiry,
]

if __name__ == "__main__":
    run(STEPS)
