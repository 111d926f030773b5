"""Job records in Redis, as the API sees them: create (within the caller's share), read, list,
cancel, and the events after a given id.

Records expire with the job (KEEP_SECONDS), so the API can restart without losing any, and an id
that has no record is unknown: 404, never an eternal "pending". The layout and the one script
that moves a job on are in course/jobs/text_jobs.py, shared with the worker.
"""
from __future__ import annotations

import json
import uuid

import redis.asyncio as aioredis

from course.api import auth
from course.jobs import text_jobs
from course.jobs.text_jobs import FINAL, KEEP_SECONDS, active_key, events_key, job_key

NUMBERS = "course:api:jobs:numbered"  # a counter: each job's number orders the listings


def owner_jobs_key(owner: str) -> str:
    return f"course:api:owner:{owner}:jobs"  # sorted set: job ids by number


def audit_key(owner: str) -> str:
    return f"course:api:owner:{owner}:audit"


# KEYS: job, events, owner's jobs, owner's active set, the counter.
# ARGV: id, owner, kind, total, created_at, max active, seconds to keep, first event.
# Returns the job's number, or 0 when the owner already has `max active` unfinished jobs.
CREATE = """
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then return 0 end
local number = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[2], 'kind', ARGV[3], 'status', 'queued',
           'current', 0, 'total', ARGV[4], 'created_at', ARGV[5], 'number', number)
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('RPUSH', KEYS[2], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], number, ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[7])
return number
"""


class Store:
    """The API's view of the job records, on one asyncio Redis client."""

    def __init__(self, client: aioredis.Redis):
        self.redis = client
        self._create = client.register_script(CREATE)
        self._move_on = client.register_script(text_jobs.MOVE_ON)

    async def prepare(self) -> None:
        """Check that Redis answers and load the two scripts into it."""
        await self.redis.script_load(CREATE)
        await self.redis.script_load(text_jobs.MOVE_ON)

    async def create(self, owner: str, kind: str, total: int, max_active: int) -> dict | None:
        """A new queued job of `owner`; None when the owner is over its share of unfinished jobs."""
        job_id, created = str(uuid.uuid4()), text_jobs.now()
        first = text_jobs.event(job_id, "queued", 0, total)
        keys = [job_key(job_id), events_key(job_id), owner_jobs_key(owner), active_key(owner), NUMBERS]
        args = [job_id, owner, kind, total, created, max_active, KEEP_SECONDS, first]
        number = await self._create(keys=keys, args=args)
        if not number:
            # Over the share, as the set says: drop what it still holds of finished or expired
            # jobs (a worker that died mid-job, a record that expired), then try once more.
            if not await self._forget_finished(owner) or not (number := await self._create(keys=keys, args=args)):
                return None
        return {"id": job_id, "owner": owner, "kind": kind, "status": "queued", "current": 0, "total": total,
                "created_at": created, "number": number, "events": 1}  # as CREATE wrote it

    async def _forget_finished(self, owner: str) -> int:
        """Drop ids from the owner's active set whose job is final or gone; how many were dropped."""
        active = await self.redis.smembers(active_key(owner))
        if not active:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in active:
                pipe.hget(job_key(job_id), "status")
            statuses = await pipe.execute()
        stale = [job_id for job_id, status in zip(active, statuses) if status is None or status in FINAL]
        if stale:
            await self.redis.srem(active_key(owner), *stale)
        return len(stale)

    async def get(self, job_id: str) -> dict | None:
        """The record with `events` (how many so far), or None for an unknown or expired id."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.llen(events_key(job_id))
            record, events = await pipe.execute()
        return {**record, "events": events} if record else None

    async def owned(self, job_id: str, owner: str) -> dict | None:
        """The record if `owner` owns it; None otherwise: someone else's job is as good as unknown."""
        record = await self.get(job_id)
        return record if record and record["owner"] == owner else None

    async def for_owner(self, owner: str, limit: int, before: int | None) -> tuple[list[dict], int | None]:
        """The owner's jobs, newest first, `limit` at most, numbered below `before`; and the next cursor."""
        top = f"({before}" if before else "+inf"
        found = await self.redis.zrevrangebyscore(owner_jobs_key(owner), top, "-inf", start=0, num=limit + 1,
                                                  withscores=True)
        page, more = found[:limit], len(found) > limit
        records = [await self.get(job_id) for job_id, _ in page]
        gone = [job_id for (job_id, _), record in zip(page, records) if record is None]
        if gone:
            await self.redis.zrem(owner_jobs_key(owner), *gone)
        following = int(page[-1][1]) if more and page else None
        return [record for record in records if record], following

    async def cancel(self, record: dict) -> int:
        """Mark the job canceled; the new event's id, or 0 when it was already final."""
        keys, args = text_jobs.move_on_arguments(
            record["id"], record["owner"], "canceled", int(record["current"]), int(record["total"]),
            finished_at=text_jobs.now())
        return int(await self._move_on(keys=keys, args=args))

    async def fail(self, record: dict, error: str) -> int:
        """Mark the job failed with `error` (unless it is final already)."""
        keys, args = text_jobs.move_on_arguments(
            record["id"], record["owner"], "failed", int(record["current"]), int(record["total"]),
            error=error, finished_at=text_jobs.now())
        return int(await self._move_on(keys=keys, args=args))

    async def events_after(self, job_id: str, after: int) -> list[tuple[int, str, dict]]:
        """(id, name, data) of every event after id `after` (ids start at 1)."""
        stored = await self.redis.lrange(events_key(job_id), after, -1)
        return [(after + offset, *_parsed(item)) for offset, item in enumerate(stored, 1)]

    async def audit(self, owner: str, entry: dict) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(audit_key(owner), json.dumps(entry))
            pipe.ltrim(audit_key(owner), 0, 99)
            pipe.expire(audit_key(owner), KEEP_SECONDS)
            await pipe.execute()

    async def audit_entries(self, owner: str) -> list[dict]:
        return [json.loads(item) for item in await self.redis.lrange(audit_key(owner), 0, 99)]


def _parsed(item: str) -> tuple[str, dict]:
    stored = json.loads(item)
    return stored["event"], stored["data"]


def view(record: dict, worker_answers: bool | None) -> dict:
    """The job as the API shows it: {id, status, progress, result, error, ...} and its links."""
    job_id, status = record["id"], record["status"]
    message = None
    if status == "queued":
        message = ("waiting for a worker: none answers (start one: make worker)" if worker_answers is False
                   else "waiting in the queue for a free worker")
    return {"id": job_id, "owner": record["owner"], "kind": record["kind"], "status": status,
            "progress": {"current": int(record["current"]), "total": int(record["total"])},
            "result": json.loads(record["result"]) if record.get("result") else None,
            "error": record.get("error") or None, "message": message,
            "created_at": record["created_at"], "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"),
            "links": {"self": f"/jobs/{job_id}",
                      "events": f"/jobs/{job_id}/events?token={auth.stream_token(job_id, record['owner'])}"}}
