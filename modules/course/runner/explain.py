"""Errors with a known cause, said plainly: what went wrong and what to do, never a traceback."""
from __future__ import annotations

from course.settings import settings


def explain(error: BaseException) -> str | None:
    """A short message for an error a learner can meet, or None for a bug (shown as a traceback)."""
    from course import llm

    message = llm.explain(error)
    if message is None and _is_celery_timeout(error):
        message = f"{error}. " + no_result_diagnosis()
    if message is None and _is_llm_error(error):  # raised in a worker, re-raised by .get()
        message = (f"A task's LLM call failed: {error}. The worker's log says more "
                   "(.course-data/worker.log for a worker the lesson started); check with: make doctor")
    return message


def _is_llm_error(error: BaseException) -> bool:
    import openai

    return isinstance(error, openai.OpenAIError)


def _is_celery_timeout(error: BaseException) -> bool:
    try:
        from celery.exceptions import TimeoutError as CeleryTimeout
    except ImportError:  # pragma: no cover - celery is a requirement
        return False
    return isinstance(error, CeleryTimeout)


def no_result_diagnosis() -> str:
    """Why a result does not come: no worker, or no worker on the queue the task went to."""
    from course.jobs.celery_app import app

    inspector = app.control.inspect(timeout=1.0)
    consumed = {name: sorted(queue["name"] for queue in queues)
                for name, queues in (inspector.active_queues() or {}).items()}
    if not consumed:
        return "No worker answers. Start one in a second terminal: make worker; check with: make doctor"
    wanted = {queue.name for queue in app.conf.task_queues or ()}
    read = {queue for queues in consumed.values() for queue in queues}
    listing = "; ".join(f"{name} reads {', '.join(queues)}" for name, queues in consumed.items())
    missing = sorted(wanted - read)
    if missing:
        return (f"No worker reads the queue(s) {', '.join(missing)} ({listing}). "
                "Restart your worker with: make worker")
    return (f"The workers answer ({listing}) but are busy or stuck: look at their log, "
            f"or check with: make doctor. (LLM timeout: {settings.llm_timeout:g} s)")
