"""Lesson 03: Celery setup

Run:  python modules/03_celery_setup.py      (--no-pause runs straight through, --list shows the steps)
Second terminal (optional): make worker
      (that is: celery -A course worker --loglevel=info -Q high,default,low)
You learn: the four parts of Celery (client, broker, worker, result backend) as they run on your
machine, the configuration an LLM workload needs and why, how tasks are routed to queues, and how
to look inside a running worker.

Redis comes from REDIS_URL; on localhost with none running, the course starts one. The lesson
uses your worker when one answers, and starts one for its own run when none does.
"""
import inspect
import json
import os
import statistics

import celery.exceptions
from redis.exceptions import ResponseError

from rich.console import Group

from course import runner as lesson
from course.jobs import redis_server, tasks, workers
from course.jobs.celery_app import CONFIGURATION
from course.settings import ROOT
from course.runner import Result, rows_table, timer


def wait(result, seconds=60):
    """The task's return value, or a clear stop when no worker picks it up."""
    try:
        return result.get(timeout=seconds)
    except celery.exceptions.TimeoutError:
        raise lesson.Stop(f"No result for {result.name} within {seconds} s: no worker consumes its "
                          f"queue. Check with: python -m course.doctor")


def short(value):
    """A setting's value in a few words: the names of queues, routes and schedules."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return ", ".join(name.removeprefix("course.jobs.tasks.") for name in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(getattr(item, "name", str(item)) for item in value)
    return str(value).removeprefix(f"{ROOT}{os.sep}")


def the_four_parts(app, redis):
    """Client, broker, worker, result backend: what each one is on this machine right now

    This process is the client: `delay()` turns a call into a message. The broker (Redis) keeps
    the message in a list until a worker takes it. The worker runs the task and writes the result
    to the result backend (Redis again), where the client reads it.
    """
    with timer() as ping:
        redis.ping()
    version = redis.info("server")["redis_version"]
    broker = redis_server.mask(app.conf.broker_url)
    origin = "started by the course" if redis_server.started_by_course(app.conf.broker_url) else "yours"
    answering = workers.workers_answering(timeout=1.0)
    rows = [
        {"part": "client", "here": f"this process, pid {os.getpid()}", "job": "sends tasks, reads results"},
        {"part": "broker", "here": f"Redis {version} at {broker} ({origin})",
         "job": "keeps each task as a message until a worker takes it"},
        {"part": "worker", "here": ", ".join(answering) or "none answers ping yet (step 6 starts one)",
         "job": "runs the tasks"},
        {"part": "result backend", "here": f"the same Redis: {redis_server.mask(app.conf.result_backend)}",
         "job": "keeps each task's state and result"},
    ]
    return Result(
        figures={"redis_version": version, "redis_ping_ms": ping.seconds * 1000,
                 "persistence": redis_server.persistence_on(redis), "workers_answering": len(answering)},
        view=rows_table(rows),
        note=f"Redis answered PING in {ping.seconds * 1000:.2f} ms; "
             f"{len(answering) or 'no'} worker(s) answering right now.",
    )


def redis_that_keeps_tasks(redis):
    """Redis that keeps tasks: the append-only file and noeviction

    The queue lives in Redis's memory. With the append-only file on, Redis writes every change
    to disk, so tasks waiting in a queue survive a Redis restart. With `noeviction`, a full Redis
    refuses new writes with an error instead of quietly deleting keys to make room, and those keys
    could be queued tasks or results. The course starts its Redis this way, and so does compose.
    """
    wanted = {"appendonly": "yes", "maxmemory-policy": "noeviction"}
    rows = []
    for name, value in wanted.items():
        try:
            here = redis.config_get(name).get(name, "?")
        except ResponseError:  # some hosted Redis services disable CONFIG
            here = "cannot tell: CONFIG is disabled"
        rows.append({"setting": name, "here": here, "wanted": value, "ok": "✓" if here == value else "✗"})
    missing = [row["setting"] for row in rows if row["ok"] == "✗"]
    return Result(
        figures={row["setting"].replace("-", "_"): row["here"] for row in rows},
        view=rows_table(rows),
        note="This Redis keeps queued tasks through a restart and never drops them for room."
             if not missing else f"Not as wanted here: {', '.join(missing)}. "
             f"Fix: redis-cli config set appendonly yes; redis-cli config set maxmemory-policy noeviction",
    )


def the_configuration(app):
    """The configuration, line by line

    Celery's defaults suit short tasks that never fail. LLM calls are slow, flaky and cost
    money, so the course's app acknowledges a task only when it is done, reserves one task at a
    time, bounds every task in time, and keeps the bounds below Redis's visibility timeout.
    """
    rows = [{"setting": name, "value": short(app.conf[name]), "why": why} for name, _, why in CONFIGURATION]
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    return Result(
        figures={"settings": len(rows), "soft_time_limit_s": soft, "time_limit_s": hard,
                 "visibility_timeout_s": visibility,
                 "limits_below_visibility": soft < hard < visibility},
        view=rows_table(rows),
        note=f"soft limit {soft} s < hard limit {hard} s < visibility timeout {visibility:g} s: "
             "a task is stopped before Redis would hand it to a second worker.",
    )


def the_registered_tasks(app):
    """The tasks the app knows, and the queue each one goes to

    `include=["course.jobs.tasks"]` imports the tasks module, and every `@app.task` in it registers a
    name. The worker runs a task by that name, so client and worker must share the same code.
    """
    rows = []
    for name in sorted(n for n in app.tasks if n.startswith("course.")):
        queue = app.amqp.router.route({}, name)["queue"].name
        signature = inspect.signature(app.tasks[name].run)
        rows.append({"task": name.removeprefix("course.jobs.tasks."), "arguments": str(signature),
                     "queue": queue})
    return Result(figures={"course_tasks": len(rows)}, view=rows_table(rows))


def a_task_is_a_message(app, redis):
    """A task is a message in a Redis list, until a worker takes it

    Sent to a queue no worker consumes, the message just waits, and its state stays PENDING:
    the first of the two causes of "PENDING forever" (the other: an id Celery has never seen).
    """
    queue = "lesson03-nobody-listens"
    result = tasks.add.apply_async((2, 3), queue=queue)
    waiting = redis.llen(queue)
    message = json.loads(redis.lindex(queue, 0))
    state = result.state
    redis.delete(queue)  # the message goes away unrun
    view = rows_table([{"Redis key": queue, "messages": waiting, "task": message["headers"]["task"],
                        "task id": message["headers"]["id"], "state": state}])
    return Result(figures={"messages_waiting": waiting, "state": state}, view=view,
                  note=f"LLEN {queue} = {waiting}; the task is {state} because nobody took it.")


def routing_to_queues(app, worker):
    """Routing: each task lands in its queue

    `task_routes` sends chat (someone waits for the answer) to `high` and batch embeddings to
    `low`; the rest goes to `default`. A worker started with `-Q high,default,low` consumes all
    three; start one with `-Q high` and interactive work never waits behind a batch.
    """
    with timer() as took:
        sent = {
            "add": tasks.add.delay(2, 3),
            "chat_completion": tasks.chat_completion.delay("Say hello in five words."),
            "embed_batch": tasks.embed_batch.delay(["first text", "second text", "third text"]),
        }
        for result in sent.values():
            wait(result)
    rows = [{"task": name, "queue": result.queue, "worker": result.worker, "state": result.state}
            for name, result in sent.items()]
    queues = {f"queue_of_{row['task']}": row["queue"] for row in rows}
    return Result(
        figures=queues | {"seconds": took.seconds, "worker_started_by_lesson": worker.started_here},
        view=rows_table(rows),
        note=f"All three done {took.seconds:.2f} s after sending. Each queue is read back from the "
             "task's result (result_extended=True stores it).",
    )


COMMANDS = [
    ("celery -A course worker --loglevel=info -Q high,default,low", "start a worker on the three queues"),
    ("... --concurrency 4", "four pool processes (default: one per CPU core)"),
    ("... -Q high", "a worker only for interactive work"),
    ("celery -A course inspect active", "what each worker runs right now"),
    ("celery -A course inspect registered", "the tasks each worker knows"),
    ("celery -A course inspect scheduled", "tasks waiting for their ETA/countdown"),
    ("celery -A course inspect stats", "pool, prefetch, counters per worker"),
    ("celery -A course purge -Q low", "delete every waiting message in a queue"),
    ("celery -A course control shutdown", "warm shutdown: finish running tasks, then stop"),
    ("celery -A course flower", "web dashboard on http://localhost:5555"),
]


def inspecting_the_worker(app, worker):
    """Worker commands, and what `inspect` says right now

    Every `celery -A course inspect ...` command broadcasts a question through Redis and
    collects the workers' answers; `app.control.inspect()` is the same from Python. Flower shows
    the same live, from the task events the workers send.
    """
    inspector = app.control.inspect(timeout=1.0)
    stats = inspector.stats() or {}
    queues = inspector.active_queues() or {}
    live = [{"worker": name, "pool processes": info["pool"]["max-concurrency"],
             "prefetch": info["prefetch_count"],
             "queues": ", ".join(queue["name"] for queue in queues.get(name, [])),
             "tasks run": sum(info["total"].values())}
            for name, info in stats.items()]
    reference = rows_table([{"command": c, "does": d} for c, d in COMMANDS], title="reference")
    return Result(
        figures={"workers": len(live), "pool_processes": live[0]["pool processes"] if live else 0,
                 "tasks_run": sum(row["tasks run"] for row in live)},
        view=Group(reference, rows_table(live, title="live: app.control.inspect()")),
    )


def acks_late_and_prefetch(app, worker):
    """The price of not losing tasks

    Celery's defaults acknowledge a task when a worker receives it and let each process reserve
    four: fastest for tiny tasks, but a crash loses everything received, and one slow LLM call
    holds up three more. The course acknowledges after the work, reserves one per process,
    records STARTED and sends events for Flower. Each of those costs Redis round trips, so tiny
    tasks run markedly slower (`python bench/celery_throughput.py` measures each part against
    the defaults). Measured below: what that overhead is next to one LLM task.
    """
    round_trips = []
    for _ in range(20):
        with timer() as trip:
            wait(tasks.add.delay(1, 1))
        round_trips.append(trip.seconds)
    with timer() as llm_trip:
        wait(tasks.chat_completion.delay("Classify: a question about invoices"))
    overhead = statistics.median(round_trips)

    stats = app.control.inspect(timeout=1.0).stats() or {}
    processes = sum(info["pool"]["max-concurrency"] for info in stats.values())
    reserved = sum(info["prefetch_count"] for info in stats.values())
    conf = app.conf
    rows = [
        {"setting": "task_acks_late", "default": False, "course": conf.task_acks_late,
         "effect": "acknowledged after it ran: a killed worker's tasks come back"},
        {"setting": "task_reject_on_worker_lost", "default": False, "course": conf.task_reject_on_worker_lost,
         "effect": "a task whose process died is requeued, not failed"},
        {"setting": "worker_prefetch_multiplier", "default": 4, "course": conf.worker_prefetch_multiplier,
         "effect": "tasks reserved per process: none waits behind a slow one"},
    ]
    return Result(figures={"pool_processes": processes, "messages_reserved": reserved,
                           "tiny_task_round_trip_ms": overhead * 1000, "llm_task_round_trip_s": llm_trip.seconds},
                  view=rows_table(rows),
                  note=f"Measured now: {processes} pool process(es) reserve {reserved} message(s) in all. "
                       f"A tiny task's whole round trip took {overhead * 1000:.1f} ms (median of 20); one "
                       f"LLM task took {llm_trip.seconds:.2f} s, so the safety costs "
                       f"{overhead / llm_trip.seconds:.1%} of it at most.")


STEPS = [the_four_parts, redis_that_keeps_tasks, the_configuration, the_registered_tasks, a_task_is_a_message,
         routing_to_queues, inspecting_the_worker, acks_late_and_prefetch]

if __name__ == "__main__":
    lesson.run(STEPS)
