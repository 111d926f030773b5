"""A job's event stream (server-sent events): every change of the job, then the stream ends.

Each event is `event: progress` (or `done`, `failed`, `canceled` at the end), `id:` its sequence
number and `data:` the job as JSON. A fresh connection gets the current state first, then each
change. A reconnection sends `Last-Event-ID` (EventSource does it by itself) and gets every event
after that id from the job's event list in Redis, so it misses nothing. A finished job whose end
the client has already seen is answered 204, which tells EventSource to stop reconnecting.
"""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

from sse_starlette import ServerSentEvent

from course.api.store import Store
from course.jobs.text_jobs import FINAL, job_key

LOOK_EVERY = 0.1  # seconds between two looks at the job's event list
RECONNECT_AFTER_MS = 1000  # how soon a browser reconnects when the stream drops


def finished_and_seen(record: dict, last_seen: int | None) -> bool:
    return record["status"] in FINAL and last_seen is not None and last_seen >= record["events"]


async def job_events(store: Store, record: dict, last_seen: int | None) -> AsyncIterator[ServerSentEvent]:
    """The events of one job from `last_seen` on (None: a fresh client, current state first)."""
    job_id = record["id"]
    after = last_seen or 0
    if last_seen is None:  # the current state first: the job's latest event
        after = max(record["events"] - 1, 0)
    first = True
    while True:
        events = await store.events_after(job_id, after)
        for number, name, data in events:
            yield ServerSentEvent(json.dumps(data), event=name, id=str(number),
                                  retry=RECONNECT_AFTER_MS if first else None)
            first, after = False, number
            if data["status"] in FINAL:
                return
        if not events:
            if not await store.redis.exists(job_key(job_id)):
                return  # expired under us: nothing more will come
            await asyncio.sleep(LOOK_EVERY)
