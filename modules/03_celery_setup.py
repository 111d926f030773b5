"""Lesson 03: Celery setup

Run:  make lesson N=03      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
Second terminal (optional): make worker
You learn: the four parts of Celery (client, broker, worker, result backend) as they run on your
machine, the configuration an LLM workload needs and why, how tasks are routed to queues, and how
to look inside a running worker.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.

Recap:
- A task is a message: the client writes it to Redis, a worker takes it, the result goes back
  to Redis. Client and worker share the task's code and find it by name.
- Acknowledge late, reserve one task per process, and keep every time limit below the
  visibility timeout: a crash then loses nothing and nothing runs twice.
- Run Redis with the append-only file and noeviction, or it may lose queued tasks.
- Route by urgency (high, default, low) and give each kind of work its own workers.
- Look inside with inspect (or Flower) before you guess.
"""
import json
import os
import statistics

from celery.app.defaults import DEFAULTS
from redis.exceptions import ResponseError

from course.jobs import redis_server, tasks, workers
from course.jobs.celery_app import CONFIGURATION
from course.runner import run, shows, timer

WHY = {name: why for name, _, why in CONFIGURATION}  # the course's reason for each setting


def the_four_parts(app, redis):
    """Client, broker, worker, result backend: what each one is here

    This process is the client: `delay()` turns a call into a message. The broker (Redis) keeps
    the message in a list until a worker takes it. The worker runs the task and writes the result
    to the result backend (Redis again), where the client reads it.

    Result: Redis {redis_version} answered PING in {redis_ping_ms}; {workers_answering}
    worker(s) answer right now.
    """
    with timer() as ping:
        redis.ping()
    answering = workers.workers_answering(timeout=1.0)
    broker = redis_server.mask(app.conf.broker_url)
    backend = redis_server.mask(app.conf.result_backend)
    parts = [
        {"part": "client", "here": f"this process (pid {os.getpid()})"},
        {"part": "broker", "here": f"Redis at {broker}"},
        {"part": "worker", "here": ", ".join(answering) or "none yet"},
        {"part": "result backend", "here": f"the same Redis: {backend}"},
    ]
    return {"parts": parts,
            "redis_version": redis.info("server")["redis_version"],
            "redis_ping_ms": ping.seconds * 1000,
            "workers_answering": len(answering),
            "started_by_course": redis_server.started_by_course(broker)}


def redis_that_keeps_tasks(redis):
    """Redis that keeps tasks: the append-only file and noeviction

    The queue lives in Redis's memory. With the append-only file on, Redis writes every change
    to disk, so queued tasks survive a restart (with `appendfsync everysec`, at most about the
    last second of writes is at risk). With `noeviction`, a full Redis refuses new writes with
    an error instead of quietly deleting keys, which could be queued tasks or results.

    Result: {verdict}
    """
    wanted = {"appendonly": "yes", "maxmemory-policy": "noeviction"}
    rows = []
    for name, value in wanted.items():
        try:
            here = redis.config_get(name).get(name)
        except ResponseError:  # some hosted Redis services disable CONFIG
            here = "cannot tell: CONFIG is disabled"
        rows.append({"setting": name, "here": here, "wanted": value})

    wrong = [row["setting"] for row in rows if row["here"] != row["wanted"]]
    if wrong:
        verdict = (f"not as wanted: {', '.join(wrong)}. Fix: redis-cli "
                   "CONFIG SET <setting> <wanted>, then CONFIG REWRITE")
    else:
        verdict = "queued tasks survive a restart and a full memory."
    return {"settings": rows, "verdict": verdict}


def settings_table(app, names):
    """Each setting, why the course sets it, its value here and Celery's default."""
    return [{"setting, and why": f"{name}\n{WHY[name]}",
             "course": app.conf[name], "default": DEFAULTS.get(name)}
            for name in names]


@shows(settings_table)
def settings_that_lose_nothing(app):
    """The configuration, part 1: losing nothing

    Celery's defaults suit short tasks that never fail. LLM calls are slow, flaky and cost
    money, so the course acknowledges a task only when it is done, requeues the task of a
    process that died, and reserves one task per process at a time.

    Result: a worker that dies mid-task gives its task back to the queue.
    """
    names = ["task_acks_late", "task_reject_on_worker_lost",
             "worker_prefetch_multiplier"]
    return {"settings": settings_table(app, names)}


def time_limits_below_the_visibility_timeout(app):
    """The configuration, part 2: time limits below the visibility timeout

    Redis hands an unacknowledged task to another worker after the visibility timeout. So every
    bound on how long a task may run stays below it: the soft limit (the task may clean up),
    then the hard limit (the process is killed). Past the timeout, a task would run twice.

    Result: soft limit {soft_limit_s} < hard limit {hard_limit_s} < visibility timeout
    {visibility_timeout_s}: {limits_below_visibility}.
    """
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    names = ["task_soft_time_limit", "task_time_limit",
             "broker_transport_options"]
    return {"settings": settings_table(app, names),
            "soft_limit_s": soft, "hard_limit_s": hard,
            "visibility_timeout_s": visibility,
            "limits_below_visibility": soft < hard < visibility}


def settings_for_results_and_states(app):
    """The configuration, part 3: messages, results and states

    JSON only (a worker never unpickles code it was sent), a STARTED state so "waiting" and
    "running" differ, and results that expire so Redis does not fill up.

    Result: results are kept for {result_expires_s}, then Redis deletes them.
    """
    names = ["task_serializer", "accept_content", "task_track_started",
             "result_expires", "result_extended", "worker_send_task_events"]
    names = [name for name in names if name in WHY]
    return {"settings": settings_table(app, names),
            "result_expires_s": app.conf.result_expires}


def a_task_is_a_message(redis):
    """A task is a message in a Redis list, until a worker takes it

    Sent to a queue no worker consumes, the message just waits, and its state stays PENDING:
    the first of the two causes of "PENDING forever" (the other: an id Celery never saw).

    Result: LLEN {queue} = {messages_waiting}, and the task reads {state}: nobody took it.
    """
    queue = "lesson03-nobody-listens"
    result = tasks.add.apply_async((2, 3), queue=queue)
    waiting = redis.llen(queue)
    message = json.loads(redis.lindex(queue, 0))
    state = result.state
    redis.delete(queue)  # the message goes away unrun

    return {"queue": queue, "messages_waiting": waiting,
            "task": message["headers"]["task"],
            "task_id": message["headers"]["id"], "state": state}


def routing_to_queues(app, worker):
    """Routing: each task lands in its queue

    `task_routes` sends chat (someone waits for the answer) to `high` and batch embeddings to
    `low`; the rest goes to `default`. A worker started with `-Q high,default,low` reads all
    three; one started with `-Q high` serves interactive work that never waits behind a batch.

    Result: all three done {took_s} after sending, each from its own queue.
    """
    router = app.amqp.router
    with timer() as took:
        sent = {
            tasks.add: tasks.add.delay(2, 3),
            tasks.chat_completion: tasks.chat_completion.delay("Hello?"),
            tasks.embed_batch: tasks.embed_batch.delay(["a", "b"]),
        }
        for result in sent.values():
            result.get(timeout=60)

    rows = [{"task": task.name.rpartition(".")[2],
             "routed_to": router.route({}, task.name)["queue"].name,
             "queue": result.queue,  # where the worker took it from
             "state": result.state} for task, result in sent.items()]
    return {"tasks": rows, "took_s": took.seconds,
            "_worker_started_by_lesson": worker.started_here}


def inspecting_the_worker(app, worker):
    """Looking inside: inspect

    `celery -A course inspect stats` (or `active`, `active_queues`, `registered`) broadcasts a
    question through Redis and collects the workers' answers; `app.control.inspect()` does the
    same from Python. Flower shows the same in a browser (make flower).

    Result: {workers} worker(s), {tasks_run} tasks run so far.
    """
    inspector = app.control.inspect(timeout=1.0)
    stats = inspector.stats() or {}
    queues = inspector.active_queues() or {}
    rows = [{"worker": name,
             "slots": info["pool"]["max-concurrency"],  # threads, processes
             "prefetch": info["prefetch_count"],
             "queues": ", ".join(q["name"] for q in queues.get(name, [])),
             "tasks_run": sum(info["total"].values())}
            for name, info in stats.items()]
    return {"inspect": rows, "workers": len(rows),
            "tasks_run": sum(row["tasks_run"] for row in rows)}


def the_price_of_losing_nothing(app, worker):
    """The price of losing nothing

    Acknowledging late and reserving one task at a time cost Redis round trips, so tiny tasks
    run slower than on Celery's defaults (`make bench` measures it per setting). Measured
    here: that overhead next to one LLM task.

    Result: a tiny task's round trip took {tiny_task_ms} (median of 20); one LLM task took
    {llm_task_s}: the safety costs at most {share_pct} of it.
    """
    round_trips = []
    for _ in range(20):
        with timer() as trip:
            tasks.add.delay(1, 1).get(timeout=60)
        round_trips.append(trip.seconds)
    with timer() as llm_trip:
        tasks.chat_completion.delay("Classify: an invoice").get(timeout=60)

    overhead = statistics.median(round_trips)
    stats = (app.control.inspect(timeout=1.0).stats() or {}).values()
    return {"tiny_task_ms": overhead * 1000, "llm_task_s": llm_trip.seconds,
            "share_pct": 100 * overhead / llm_trip.seconds,
            "slots": sum(s["pool"]["max-concurrency"] for s in stats),
            "messages_reserved": sum(s["prefetch_count"] for s in stats)}


STEPS = [
    the_four_parts,
    redis_that_keeps_tasks,
    settings_that_lose_nothing,
    time_limits_below_the_visibility_timeout,
    settings_for_results_and_states,
    a_task_is_a_message,
    routing_to_queues,
    inspecting_the_worker,
    the_price_of_losing_nothing,
]

if __name__ == "__main__":
    run(STEPS)
