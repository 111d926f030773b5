"""One LLM job written once as a plain function, run two ways: by Celery and by RQ (lesson 09).

    summarise(text) -> {"summary": ..., "usage": {"model", "prompt_tokens", "completion_tokens"}}

`summarise_task` is the function registered as a Celery task; RQ enqueues the function itself
(rq_tasks.py). The result says what the call spent, so the worker's metrics count tokens and
cost from it (metrics.py, on task_success).
"""
from __future__ import annotations

import openai

from course import llm
from course.jobs.celery_app import app
from course.settings import settings

_client: openai.OpenAI | None = None  # one per process: an RQ job forks a fresh one each time


def summarise(text: str) -> dict:
    """Summarise one text with one LLM call; say how many tokens it took."""
    global _client
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if _client is None:
        _client = llm.make_sync_client()
    response = _client.chat.completions.create(
        model=settings.chat_model, max_tokens=60,
        messages=[{"role": "user", "content": f"Summarise in one sentence: {text}"}])
    usage = response.usage
    return {"summary": response.choices[0].message.content or "",
            "usage": {"model": response.model, "prompt_tokens": usage.prompt_tokens if usage else 0,
                      "completion_tokens": usage.completion_tokens if usage else 0}}


# The same function as a Celery task: retried on what may work next time, with backoff and jitter.
TRANSIENT = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
summarise_task = app.task(summarise, name="course.jobs.llm_job.summarise", autoretry_for=TRANSIENT,
                          retry_backoff=1, retry_jitter=True, max_retries=3)
