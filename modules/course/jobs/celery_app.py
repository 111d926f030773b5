"""The course's one Celery app, configured for LLM work.

Run a worker (second terminal):  make worker  (the command is workers.WORKER_COMMAND)
Run beat (third terminal):        celery -A course beat --loglevel=info
Watch it all in a browser:        celery -A course flower   (http://localhost:5555)
"""
from __future__ import annotations

import logging

from celery import Celery, concurrency, signals
from celery.schedules import crontab
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

from course.settings import DATA, settings

# `--pool threads` (the course's worker, see workers.py) runs Celery's thread pool plus what it
# lacks and prefork has: revoke(terminate=True) and the time limits (see thread_pool.py).
concurrency.ALIASES["threads"] = "course.jobs.thread_pool:TaskPool"

# Every task is a CourseTask: it counts its deliveries, refuses a countdown that would make it run
# twice, and lands in the dead letter store when it fails for good (see deliveries.py).
# What a worker imports at start: the tasks, and (lesson 09) the signal handlers that count its
# metrics and put each task's name and id on its log lines.
WORKER_MODULES = ["course.jobs.tasks", "course.jobs.text_jobs", "course.jobs.llm_job",
                  "course.jobs.metrics", "course.jobs.logs"]
app = Celery("course", broker=settings.redis_url, backend=settings.redis_url, include=WORKER_MODULES,
             task_cls="course.jobs.deliveries:CourseTask")
# Results come from a Redis backend that keeps a digest of large arguments, not the arguments.
app.loader.override_backends = {"redis": "course.jobs.results:CompactRedisBackend"}
# redis:// brokers use kombu's Redis transport with the course's fix (see redis_transport.py); under
# its usual name, so URLs, Flower and the worker's banner still read redis://.
TRANSPORT_ALIASES["redis"] = "course.jobs.redis_transport:Transport"

# Everything that bounds how long a task may hold a message stays below the visibility timeout:
# past it, Redis hands the unacknowledged message to another worker and the task runs twice.
VISIBILITY_TIMEOUT = settings.celery_visibility_timeout
SOFT_TIME_LIMIT = round(VISIBILITY_TIMEOUT * 0.6)
HARD_TIME_LIMIT = round(VISIBILITY_TIMEOUT * 0.8)
# A task waiting for its countdown is already unacknowledged, and stays so while it runs:
# countdown + run time must fit in the visibility timeout.
LONGEST_COUNTDOWN = VISIBILITY_TIMEOUT - HARD_TIME_LIMIT
RETRY_BACKOFF_MAX = min(60, LONGEST_COUNTDOWN)
# The most an LLM task waits between its attempts, in all, before it fails for good.
RETRY_BUDGET = round(VISIBILITY_TIMEOUT * 0.8)
# Seconds between a worker's looks for messages whose worker died (unacked past the visibility
# timeout). Kombu's default is one look per 100 s: a dead worker's tasks came back after the
# visibility timeout plus up to 100 s.
RESTORE_EVERY = max(1, min(10, round(VISIBILITY_TIMEOUT / 10)))

QUEUES = (Queue("high"), Queue("default"), Queue("low"))
ROUTES = {
    "course.jobs.tasks.chat_completion": {"queue": "high"},  # a user is waiting for the answer
    "course.jobs.tasks.embed_batch": {"queue": "low"},  # batch work: fine to wait behind others
    "course.jobs.tasks.long_report": {"queue": "low"},
}
BEAT_SCHEDULE = {
    "heartbeat-every-5-seconds": {"task": "course.jobs.tasks.heartbeat", "schedule": 5.0},
    "nightly-report": {"task": "course.jobs.tasks.nightly_report", "schedule": crontab(hour=2, minute=0)},
}

# (setting, value, why): applied below, and shown as a table by lesson 03.
CONFIGURATION: list[tuple[str, object, str]] = [
    ("task_serializer", "json", "JSON only: readable in Redis, and never unpickles code"),
    ("accept_content", ["json"], "a worker refuses anything that is not JSON"),
    ("result_serializer", "json", "results are JSON too"),
    ("task_acks_late", True, "acknowledge after the task finished: a crash loses no task"),
    ("task_reject_on_worker_lost", True,
     f"a task whose process died goes back to the queue (at most {settings.max_deliveries} deliveries)"),
    ("worker_prefetch_multiplier", 1, "a process reserves one task at a time: none waits behind a slow LLM call"),
    ("task_soft_time_limit", SOFT_TIME_LIMIT, "seconds, then SoftTimeLimitExceeded: the task may clean up"),
    ("task_time_limit", HARD_TIME_LIMIT, "seconds, then the process is killed: a hung call cannot hold a worker"),
    ("broker_transport", "redis",
     "Redis, with the course's fix (redis_transport.py): a Redis restart neither stops the worker nor runs "
     "a task twice"),
    ("broker_transport_options", {"visibility_timeout": VISIBILITY_TIMEOUT, "unacked_restore_interval": RESTORE_EVERY,
                                  "unacked_restore_throttle": 1},
     "seconds an unacked task waits before Redis redelivers it (above every time limit), and how often "
     "workers look for such tasks"),
    ("result_backend_transport_options", {"visibility_timeout": VISIBILITY_TIMEOUT},
     "the same for the result backend's connection"),
    ("result_backend_always_retry", True, "a task that loses Redis mid-way waits for it instead of failing"),
    ("result_backend_max_retries", 60, "tries before giving up: rides out a Redis restart of about half a minute"),
    ("result_backend_max_sleep_between_retries_ms", 1000, "at most a second between two tries"),
    ("task_track_started", True, "a task reports STARTED, so 'waiting' and 'running' differ"),
    ("result_expires", 24 * 3600, "seconds results stay in Redis: it does not fill up"),
    ("result_extended", True, "results keep task name, worker and queue (large arguments: a digest only)"),
    ("broker_connection_retry_on_startup", True, "a worker started before Redis waits for it"),
    ("worker_cancel_long_running_tasks_on_connection_loss", False,
     "Redis restarts under a running task: the task goes on and is acknowledged once Redis is back"),
    ("task_send_sent_event", False, "no 'sent' event per task: a Redis write saved on every delay()"),
    ("worker_send_task_events", False,
     "no task events (the costliest setting for short tasks); Flower turns them on in the workers it watches"),
    ("task_queues", QUEUES, "three queues: high (interactive), default, low (batch)"),
    ("task_default_queue", "default", "where a task without a route goes"),
    ("task_routes", ROUTES, "chat to high, batch embeddings and reports to low"),
    ("beat_schedule", BEAT_SCHEDULE, "heartbeat every 5 s (the demo), a report at 02:00"),
    ("beat_schedule_filename", str(DATA / "celerybeat-schedule"), "beat's memory, kept out of the repo"),
]
app.conf.update({name: value for name, value, _ in CONFIGURATION})
DATA.mkdir(exist_ok=True)  # beat opens its schedule file there before any signal could create it

log = logging.getLogger("course.worker")


@signals.worker_init.connect
def start_llm_before_the_pool(sender=None, **_):
    """Runs in the worker's main process before it forks its pool.

    With no LLM configured the worker starts the simulator here, and the pool processes it
    forks inherit OPENAI_BASE_URL, so they all talk to that one server.
    """
    if getattr(sender, "app", None) is not app:
        return
    from course import llm

    try:
        llm.ensure_endpoint()
    except Exception as error:  # reported by the check below; the worker still starts
        log.error("Could not start the simulated LLM: %s", error)


@signals.worker_ready.connect
def check_redis_and_llm(sender=None, **_):
    """Say plainly at start-up what the worker cannot reach."""
    if getattr(sender, "app", None) is not app:
        return
    from course import llm
    from course.jobs import redis_server

    problem = redis_server.redis_problem()
    if problem:
        log.error("✗ Redis: %s", problem)
    else:
        log.info("✓ Redis answers at %s", redis_server.mask(settings.redis_url))
    try:
        llm.make_sync_client().models.list()
        log.info("✓ LLM: %s", llm.describe())
    except Exception as error:
        log.error("✗ LLM: %s", llm.explain(error) or error)
