"""Every line a worker logs while it runs a task carries the task's name and id.

    [12:00:01 INFO ForkPoolWorker-1] course.jobs.tasks.summarise[3f2a...] httpx: HTTP Request: POST ...

So `grep <task id> worker.log` follows one job through the worker: received, each LLM request,
each retry, the end. Celery's own task logger does this for the lines it writes; here every
logger gets it (the HTTP client's, the course's, yours), lines outside a task get `-[-]`.

How: task_prerun puts (name, id) in a context variable, and a logging filter on the worker's
handlers copies it onto each record. The LLM call runs on the process's event loop thread
(tasks.run_async), and asyncio hands the calling thread's context variables to that
coroutine, so its lines carry the id too.
"""
from __future__ import annotations

import contextvars
import logging

from celery import signals

FORMAT = "[%(asctime)s %(levelname)s %(processName)s] %(task_name)s[%(task_id)s] %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"

_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("course_task", default=None)


class TaskFields(logging.Filter):
    """Puts the running task's name and id on each record ("-" outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name_and_id = _current.get() or ("-", "-")
        record.task_name, record.task_id = name_and_id
        return True


@signals.task_prerun.connect
def remember_the_task(task_id=None, task=None, **_):
    _current.set((getattr(task, "name", "?"), task_id))


@signals.task_postrun.connect
def forget_the_task(**_):
    _current.set(None)


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_task_fields(logger=None, **_):
    """Once the worker has set up its logging: every handler gets the filter and the format."""
    for handler in logger.handlers if logger else ():
        if not any(isinstance(f, TaskFields) for f in handler.filters):
            handler.addFilter(TaskFields())
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))


def lines_of(log_text: str, task_id: str) -> list[str]:
    """grep: the lines of a log that name this task id."""
    return [line for line in log_text.splitlines() if task_id in line]
