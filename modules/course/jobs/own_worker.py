"""Workers a lesson starts for itself: on a queue of its own, with a short visibility timeout.

The resilience lesson kills its worker on purpose and watches the tasks come back. A task held by
a dead worker comes back after the visibility timeout (300 s by default); with a few seconds
instead, the learner sees it happen. The tasks go to QUEUE, which no worker of yours reads, so
your worker neither takes them nor dies with the poison task.

Careful: a worker with a short visibility timeout gives back ANY message unacknowledged for
longer than that, on every queue of its Redis database. Never run one next to real work.
"""
from __future__ import annotations

from course.jobs.workers import Worker, start_worker

QUEUE = "resilience"
VISIBILITY_TIMEOUT = 8  # seconds; the time limits (60%, 80%) and retry delays derive from it


class OwnWorkers:
    """`start()` starts one more worker on QUEUE, `running()` gives the one running (or starts it),
    `stop()` stops every one still running."""

    def __init__(self, queue: str = QUEUE, visibility_timeout: float = VISIBILITY_TIMEOUT,
                 concurrency: int = 2):
        self.queue, self.visibility_timeout, self.concurrency = queue, visibility_timeout, concurrency
        self.started: list[Worker] = []

    def start(self) -> Worker:
        from course.llm import ensure_endpoint

        ensure_endpoint()  # the worker inherits OPENAI_BASE_URL: the same simulator as the lesson
        # prefork: the poison task must kill a pool process, never the whole worker
        worker = start_worker(self.queue, extra=("--pool", "prefork", "--concurrency", str(self.concurrency)),
                              environment={"CELERY_VISIBILITY_TIMEOUT": str(self.visibility_timeout)})
        self.started.append(worker)
        return worker

    def running(self) -> Worker:
        """The worker started last, if it still runs; else a new one."""
        alive = [worker for worker in self.started if worker.process.poll() is None]
        return alive[-1] if alive else self.start()

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()


def own_workers() -> OwnWorkers:
    """What a step gets when it asks for `own_workers`."""
    return OwnWorkers()
