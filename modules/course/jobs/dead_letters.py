"""The dead letter store: tasks that failed for good, kept in Redis to inspect, replay or delete.

A task lands here when it fails and will not run again: its retries are used up, its error is
not worth retrying, or it was delivered more than MAX_DELIVERIES times (its worker process died
each time). Each entry keeps the task's name, arguments, error, traceback, attempts, deliveries
and the time. The store is bounded: past DEAD_LETTERS_MAX entries the oldest is dropped, with a
warning in the log.

    python -m course.jobs.dead_letters                 list the entries, newest first
    python -m course.jobs.dead_letters show ID         one entry, with its traceback
    python -m course.jobs.dead_letters replay ID       send it again (new id), then remove it
    python -m course.jobs.dead_letters delete ID       remove it
"""
from __future__ import annotations

import json
import logging
import sys
import time

from course.jobs import redis_server
from course.jobs.celery_app import app
from course.jobs.results import shrink_arguments
from course.settings import settings

ENTRIES = "course:dead-letters"  # hash: task id -> the entry as JSON
ORDER = "course:dead-letters:order"  # sorted set: task id -> when it failed (oldest first)
ARGUMENTS_KEPT_MAX = 64 * 1024  # bytes of JSON per argument; larger ones keep a digest (no replay)
TRACEBACK_KEPT = 4000  # characters: the end of the traceback, where the error is

log = logging.getLogger("course.dead_letters")


class NotReplayable(ValueError):
    """The entry cannot be sent again: unknown id, or its arguments were too large to keep."""


def _redis():
    return app.backend.client  # the result backend's Redis client: same server, one pool per process


def add(task_id: str, task: str, args, kwargs, error: str, traceback: str = "",
        attempts: int = 1, deliveries: int = 1, queue: str | None = None, reason: str = "") -> dict:
    """Keep a task that failed for good (`error`: "Type: message"); drop the oldest past the cap."""
    kept_args, kept_kwargs = shrink_arguments(args, kwargs, ARGUMENTS_KEPT_MAX)
    entry = {
        "id": task_id, "task": task, "args": kept_args, "kwargs": kept_kwargs, "queue": queue,
        "error": error, "traceback": (traceback or "")[-TRACEBACK_KEPT:],
        "attempts": attempts, "deliveries": deliveries, "reason": reason, "failed_at": time.time(),
        "replayable": (kept_args, kept_kwargs) == (list(args or ()), dict(kwargs or {})),
    }
    redis = _redis()
    redis.pipeline().hset(ENTRIES, task_id, json.dumps(entry, default=str)).zadd(
        ORDER, {task_id: entry["failed_at"]}).execute()
    overflow = redis.zcard(ORDER) - settings.dead_letters_max
    if overflow > 0:
        for dropped, _ in redis.zpopmin(ORDER, overflow):
            redis.hdel(ENTRIES, dropped)
            log.warning("Dead letter store full (DEAD_LETTERS_MAX=%d): dropped the oldest entry, %s",
                        settings.dead_letters_max, dropped.decode() if isinstance(dropped, bytes) else dropped)
    return entry


def entries(limit: int = 50) -> list[dict]:
    """The newest `limit` entries, newest first."""
    ids = _redis().zrevrange(ORDER, 0, limit - 1)
    found = _redis().hmget(ENTRIES, ids) if ids else []
    return [json.loads(raw) for raw in found if raw]


def get(task_id: str) -> dict | None:
    """One entry, or None."""
    raw = _redis().hget(ENTRIES, task_id)
    return json.loads(raw) if raw else None


def count() -> int:
    return _redis().zcard(ORDER)


def delete(task_id: str) -> bool:
    """Remove an entry; False when there was none."""
    removed, _ = _redis().pipeline().hdel(ENTRIES, task_id).zrem(ORDER, task_id).execute()
    return bool(removed)


def replay(task_id: str):
    """Send the task again with the same arguments and a new id; the entry goes once it is sent."""
    entry = get(task_id)
    if entry is None:
        raise NotReplayable(f"No dead letter with id {task_id}. List them: python -m course.jobs.dead_letters")
    if not entry["replayable"]:
        raise NotReplayable(f"{task_id} cannot be replayed: its arguments were too large to keep "
                            f"(over {ARGUMENTS_KEPT_MAX} bytes each). Send {entry['task']} again yourself.")
    result = app.send_task(entry["task"], args=entry["args"], kwargs=entry["kwargs"], queue=entry["queue"])
    delete(task_id)  # only now: had sending failed, the entry would still be here
    return result


def _main(argv: list[str]) -> int:
    command, *rest = argv or ["list"]
    problem = redis_server.redis_problem()
    if problem:
        print(problem)
        return 1
    if command == "list" and not rest:
        shown = entries()
        for entry in shown:
            moment = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["failed_at"]))
            print(f"{entry['id']}  {moment}  {entry['task']}  {entry['reason']}: {entry['error'][:100]}")
        print(f"{count()} dead letter(s)" + (f", newest {len(shown)} shown" if count() > len(shown) else ""))
        return 0
    if command in ("show", "replay", "delete") and len(rest) == 1:
        if command == "show":
            entry = get(rest[0])
            print(json.dumps(entry, indent=2) if entry else f"No dead letter with id {rest[0]}.")
            return 0 if entry else 1
        if command == "delete":
            found = delete(rest[0])
            print("Deleted." if found else f"No dead letter with id {rest[0]}.")
            return 0 if found else 1
        try:
            print(f"Sent again as {replay(rest[0]).id}.")
        except NotReplayable as refused:
            print(refused)
            return 1
        return 0
    print(__doc__.split("\n\n")[-1])
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
