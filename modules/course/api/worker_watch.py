"""Whether a worker answers, known to the API at all times without asking on every request.

A ping waits for replies, so it runs in the background every few seconds (in a thread: Celery's
control API blocks) and requests read the last answer. A job queued while no worker answers
says so ("waiting for a worker"), and so does the page.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from course.jobs.celery_app import app

EVERY_SECONDS = 3.0
log = logging.getLogger("course.api")


class WorkerWatch:
    def __init__(self, every: float = EVERY_SECONDS):
        self.every = every
        self.answers: bool | None = None  # None: not asked yet
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            before, self.answers = self.answers, await asyncio.to_thread(self._ping)
            if before is not False and self.answers is False:
                log.warning("No worker answers: jobs wait in the queue until one runs (make worker).")
            await asyncio.sleep(self.every)

    @staticmethod
    def _ping() -> bool:
        try:
            with app.connection_for_write() as connection:
                return bool(app.control.ping(timeout=1.0, limit=1, connection=connection))
        except Exception as error:  # Redis away: no worker can be reached either
            log.warning("Could not ping the workers: %s", error)
            return False
