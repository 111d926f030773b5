"""The job API: submit LLM work over texts, follow it, list it, cancel it; and the page that does
it in a browser. `create_app()` builds it; `python -m course.api` (make api) serves it.

    POST   /jobs               202 + Location: the job, queued in Celery, answered at once
    GET    /jobs               your jobs, newest first (?limit=, ?before= from "next")
    GET    /jobs/{id}          its status, progress, result or error; Retry-After while unfinished
    DELETE /jobs/{id}          cancel it: 202, or 409 when it has already finished
    GET    /jobs/{id}/events   server-sent events until it ends (Last-Event-ID resumes)
    GET    /audit              your audit records (written by a BackgroundTask)
    GET    /health             Redis, whether a worker answers, the kinds and the limits
    GET    /  and  /docs       the page, and the interactive API docs (served locally, no CDN)

Every route but /health, the page and the docs wants `Authorization: Bearer <token>` (API_TOKENS);
someone else's job answers 404, as an unknown one does.
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sse_starlette import EventSourceResponse

from course.api import audit, auth, events, guards, problems
from course.api.schemas import LIMITS, MAX_BODY_BYTES, JobRequest
from course.api.store import Store, view
from course.api.worker_watch import WorkerWatch
from course.jobs.text_jobs import FINAL, KINDS, run_text_job
from course.settings import settings

PAGE = Path(__file__).parent / "static"
POLL_AGAIN_SECONDS = 1  # Retry-After on an unfinished job
BUSY_RETRY_SECONDS = 5  # Retry-After on a 429: about the time a short job takes
REDIS_CONNECTIONS = 50  # the most Redis connections one API process opens
Owner = Annotated[str, Depends(auth.caller)]
JobId = Annotated[str, PathParam(max_length=64)]


def create_app(redis_url: str | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # A bounded pool that makes a request wait for a free connection rather than fail.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url or settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=10,
            decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
        client = aioredis.Redis(connection_pool=pool)
        app.state.store, app.state.workers = Store(client), WorkerWatch()
        app.state.workers.start()
        await app.state.store.prepare()  # the first job need not wait for the store ...
        await asyncio.to_thread(connect_to_broker)  # ... nor for the broker
        yield
        await app.state.workers.stop()
        await client.aclose()

    app = FastAPIOffline(title="The course's job API", version="1.0", lifespan=lifespan,
                         description="Background LLM jobs over texts: submit, follow, list, cancel.")
    problems.install(app)
    app.add_middleware(guards.BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(guards.SafeHeaders)
    add_routes(app)
    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    return app


def connect_to_broker() -> None:
    """Connect to the broker and declare the queues now, so the first POST does not wait for it."""
    celery = run_text_job.app
    with celery.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=3)
        for queue in celery.amqp.queues.values():
            producer.maybe_declare(queue)


def add_routes(app: FastAPI) -> None:
    def store(request: Request) -> Store:
        return request.app.state.store

    def job_view(request: Request, record: dict) -> dict:
        return view(record, request.app.state.workers.answers)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response((PAGE / "index.html").read_bytes(), media_type="text/html; charset=utf-8")

    @app.get("/health", summary="Redis, the worker, the kinds and the limits")
    async def health(request: Request) -> dict:
        await store(request).redis.ping()
        return {"status": "ok", "worker": request.app.state.workers.answers, "kinds": list(KINDS),
                "limits": LIMITS}

    @app.post("/jobs", status_code=202, summary="Submit a job; answered at once")
    async def submit(job: JobRequest, owner: Owner, request: Request, background: BackgroundTasks) -> JSONResponse:
        record = await store(request).create(owner, job.kind, len(job.texts), LIMITS["active_per_caller"])
        if record is None:
            raise HTTPException(429, f"{owner} already has {LIMITS['active_per_caller']} unfinished jobs, the most "
                                     "one caller may have (API_MAX_ACTIVE); retry when one has finished.",
                                headers={"Retry-After": str(BUSY_RETRY_SECONDS)})
        try:
            await asyncio.to_thread(run_text_job.apply_async, args=[job.kind, job.texts], task_id=record["id"])
        except Exception:
            await store(request).fail(record, "could not be queued: the broker did not take it")
            raise  # answered 503 (Redis away) or 500, with the record failed, not queued for ever
        background.add_task(audit.record_submission, store(request), owner, record["id"], job.kind, len(job.texts))
        return JSONResponse(job_view(request, record), status_code=202,
                            headers={"Location": f"/jobs/{record['id']}"})

    @app.get("/jobs", summary="Your jobs, newest first")
    async def list_jobs(owner: Owner, request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                        before: Annotated[int | None, Query(ge=1)] = None) -> dict:
        records, following = await store(request).for_owner(owner, limit, before)
        return {"owner": owner, "jobs": [job_view(request, record) for record in records],
                "next": f"/jobs?limit={limit}&before={following}" if following else None}

    @app.get("/jobs/{job_id}", summary="A job: status, progress, result or error")
    async def get_job(job_id: JobId, owner: Owner, request: Request) -> JSONResponse:
        record = await owned(request, job_id, owner)
        unfinished = record["status"] not in FINAL
        return JSONResponse(job_view(request, record),
                            headers={"Retry-After": str(POLL_AGAIN_SECONDS)} if unfinished else None)

    @app.delete("/jobs/{job_id}", status_code=202, summary="Cancel a job")
    async def cancel(job_id: JobId, owner: Owner, request: Request) -> JSONResponse:
        record = await owned(request, job_id, owner)
        if record["status"] in FINAL or not await store(request).cancel(record):
            raise HTTPException(409, f"Job {job_id} has already finished ({record['status']}): nothing to cancel.")
        # The worker checks the record before each text; revoke also drops it from the queue.
        await asyncio.to_thread(run_text_job.app.control.revoke, job_id)
        return JSONResponse(job_view(request, await store(request).get(job_id)), status_code=202)

    @app.get("/jobs/{job_id}/events", summary="The job's progress as server-sent events",
             response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {}}}, 204: {"description": "finished"}})
    async def job_events(job_id: JobId, request: Request, token: str | None = None,
                         last_event_id: Annotated[str | None, Header()] = None) -> Response:
        record = await stream_record(request, job_id, token)
        if last_event_id is not None and not last_event_id.strip().isdigit():
            raise HTTPException(400, "Last-Event-ID must be the whole number of an event this stream sent.")
        seen = int(last_event_id) if last_event_id is not None else None
        if seen is not None and seen > record["events"]:
            seen = None  # an id this job never had: start afresh, with the current state
        if events.finished_and_seen(record, seen):
            return Response(status_code=204)  # EventSource stops reconnecting on 204
        return EventSourceResponse(events.job_events(store(request), record, seen), send_timeout=30)

    @app.get("/audit", summary="Your audit records, newest first")
    async def audit_records(owner: Owner, request: Request) -> dict:
        return {"owner": owner, "records": await store(request).audit_entries(owner)}

    async def owned(request: Request, job_id: str, owner: str) -> dict:
        record = await store(request).owned(job_id, owner)
        if record is None:
            raise HTTPException(404, f"No job {job_id} of yours (unknown, expired, or not yours).")
        return record

    async def stream_record(request: Request, job_id: str, token: str | None) -> dict:
        """The job whose stream may be opened: by its own stream token, or by its owner's bearer token."""
        if token is None:
            return await owned(request, job_id, await auth.caller(request))
        record = await store(request).get(job_id)
        if record is None or not auth.stream_token_owner(token, job_id, record["owner"]):
            raise HTTPException(401, "This events link has expired or is not for this job: GET /jobs/<id> "
                                     "gives a fresh one.")
        return record
