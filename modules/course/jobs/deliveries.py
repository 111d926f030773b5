"""What every task of the course's app does besides its work (the app's `task_cls`).

- It counts its deliveries. Redis hands a message out again when the process running it died
  (reject on worker lost, or the visibility timeout) and marks it `redelivered`, but keeps no
  count: a task that kills its process (os._exit, a segfault in a native library, the OOM
  killer) would come back forever. Each redelivered run adds one to a counter in Redis; past
  MAX_DELIVERIES the task does not run: it fails with TooManyDeliveries and the worker goes on.
- It refuses a countdown or ETA longer than a message can wait safely (LONGEST_COUNTDOWN):
  a message waits unacknowledged in the worker, and past the visibility timeout Redis gives it
  to a second worker, so the task would run twice.
- When it fails for good, it lands in the dead letter store (dead_letters.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from celery import Task, signals
from celery.exceptions import TimeLimitExceeded

from course.jobs import dead_letters
from course.jobs.celery_app import LONGEST_COUNTDOWN, VISIBILITY_TIMEOUT, app
from course.settings import settings

COUNTED_FOR = 24 * 3600  # seconds a delivery count is kept

log = logging.getLogger("course.deliveries")


class TooManyDeliveries(RuntimeError):
    """The task's process died on each of its last deliveries: it is not run again."""


class DelayTooLong(ValueError):
    """A countdown or ETA so long that the task would be delivered twice."""


def deliveries_key(task_id: str, retries: int) -> str:
    # A retry is a new message with the same id: each one gets its own count.
    return f"course:deliveries:{task_id}:{retries or 0}"


class CourseTask(Task):
    """A Celery task that counts its deliveries and refuses delays that would make it run twice."""

    default_retry_delay = min(180, LONGEST_COUNTDOWN)  # Celery's 3 minutes, unless that is too long here

    def __call__(self, *args, **kwargs):
        request = self.request
        if (request.delivery_info or {}).get("redelivered") and not request.is_eager:
            # The first delivery is never counted (no Redis write for a task that runs normally).
            redis = self.backend.client
            key = deliveries_key(request.id, request.retries)
            deliveries = 1 + redis.pipeline().incr(key).expire(key, COUNTED_FOR).execute()[0]
            if deliveries > settings.max_deliveries:
                raise TooManyDeliveries(
                    f"{self.name} was delivered {deliveries} times and its worker process died each time "
                    f"(MAX_DELIVERIES={settings.max_deliveries}): not run again. It is in the dead letter "
                    f"store: python -m course.jobs.dead_letters show {request.id}")
        return super().__call__(*args, **kwargs)

    def apply_async(self, args=None, kwargs=None, **options):
        refuse_long_delay(self.name, options.get("countdown"), options.get("eta"))
        return super().apply_async(args, kwargs, **options)


def refuse_long_delay(name: str, countdown: float | None = None, eta=None) -> None:
    """Raise DelayTooLong for a countdown or ETA past LONGEST_COUNTDOWN seconds from now."""
    delays = [countdown or 0]
    if eta is not None:
        eta = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        eta = eta if eta.tzinfo else eta.replace(tzinfo=timezone.utc)  # Celery reads a naive ETA as UTC
        delays.append((eta - datetime.now(timezone.utc)).total_seconds())
    delay = max(delays)
    if delay > LONGEST_COUNTDOWN:
        raise DelayTooLong(
            f"{name}: a delay of {delay:.0f} s is refused. A delayed task waits unacknowledged in a worker, "
            f"and after the visibility timeout ({VISIBILITY_TIMEOUT:g} s) Redis gives it to a second worker: it "
            f"would run twice. Delays up to {LONGEST_COUNTDOWN:g} s are safe here. For a job at a time of day "
            f"use beat (beat_schedule); for a longer wait raise CELERY_VISIBILITY_TIMEOUT.")


@signals.task_failure.connect
def keep_in_dead_letters(sender=None, task_id=None, exception=None, args=None, kwargs=None, einfo=None, **_):
    """Every failure is final by the time this signal fires (a retry is not a failure)."""
    if not isinstance(sender, CourseTask) or sender.app is not app or not task_id:
        return
    request = sender.request  # the failed task's request (empty after a hard time limit)
    retries = request.retries or 0
    counted = sender.backend.client.get(deliveries_key(task_id, retries))
    if isinstance(exception, TooManyDeliveries):
        reason = "too many deliveries"
    elif isinstance(exception, TimeLimitExceeded):
        reason = "time limit"
    else:
        reason = "retries used up" if retries else "not retried"
    # einfo.type is the real class (the exception itself may be a picklable stand-in for it).
    error = f"{getattr(einfo, 'type', type(exception)).__name__}: {exception}"
    dead_letters.add(task_id, sender.name, args, kwargs, error,
                     traceback=getattr(einfo, "traceback", "") or "", attempts=retries + 1,
                     deliveries=1 + int(counted or 0), queue=(request.delivery_info or {}).get("routing_key"),
                     reason=reason)
    log.warning("%s[%s] failed for good (%s): kept in the dead letter store", sender.name, task_id, reason)
