"""The side job FastAPI's BackgroundTasks runs after POST /jobs has answered: an audit record.

It runs in the API's own process, after the answer went out. That is fine for work that may be
lost: nothing queues it, nothing retries it, and it dies with the process (a crash, a kill, a
deploy that does not wait). The job itself goes to Celery, which keeps it in Redis.
"""
from __future__ import annotations

import asyncio

from course.api.store import Store
from course.jobs.text_jobs import now

# How long the audit service takes to take a record; here a pause stands in for that remote call.
AUDIT_SERVICE_SECONDS = 0.5


async def record_submission(store: Store, owner: str, job_id: str, kind: str, texts: int) -> None:
    await asyncio.sleep(AUDIT_SERVICE_SECONDS)
    await store.audit(owner, {"job": job_id, "kind": kind, "texts": texts, "at": now()})
