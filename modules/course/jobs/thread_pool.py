"""The course's thread pool: Celery's `--pool threads`, plus what prefork gives and it lacks.

Celery's thread pool cannot stop a task that runs: revoke(terminate=True) fails in the worker
(NotImplementedError) and the time limits are ignored, so the task runs on to its end. Prefork
stops it by signalling or killing the process that runs it. A thread cannot be killed, so this
pool raises an exception in the thread that runs the task instead:

- revoke(terminate=True) and the hard time limit raise TaskStopped, a BaseException (a task's
  `except Exception` does not swallow it): the task stops at its next Python line and ends
  REVOKED, or FAILURE with TimeLimitExceeded, as under prefork;
- the soft time limit raises SoftTimeLimitExceeded, which the task may catch to clean up.

A call blocked in C (a long sleep, a socket read) finishes first; the course's LLM calls wait
in short slices (tasks.run_async), so they stop within a tenth of a second. What no thread pool
gives is prefork's isolation: a task that kills its process (os._exit, a crash in native code)
takes every task of the worker with it. celery_app.py makes `--pool threads` mean this pool.
"""
from __future__ import annotations

import ctypes
import heapq
import itertools
import threading
import time
from concurrent.futures import Future

from billiard.einfo import ExceptionInfo
from celery.concurrency import thread
from celery.exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded


class TaskStopped(BaseException):
    """Raised in a task's thread to stop it (revoke with terminate=True, or the hard limit)."""


def raise_in_thread(thread_id: int, exception_type: type[BaseException]) -> bool:
    """Make `exception_type` raise in the thread `thread_id` at its next Python line."""
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                         ctypes.py_object(exception_type))
    if changed > 1:  # cannot happen for one thread id; the C API asks to undo it
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
    return changed == 1


def _failed(error: BaseException) -> tuple:
    """What Celery's tracer returns for a failed task: (failed, exception info, runtime)."""
    try:
        raise error
    except BaseException:
        return 1, ExceptionInfo(), 0.0


class _Job:
    __slots__ = ("thread", "stopped_by", "soft", "hard", "on_timeout")  # many wait in the heap

    def __init__(self, soft: float | None, hard: float | None, on_timeout):
        self.thread: int | None = None
        self.stopped_by: BaseException | None = None  # set once, when TaskStopped is raised
        self.soft, self.hard, self.on_timeout = soft, hard, on_timeout


class ApplyResult(thread.ApplyResult):
    def terminate(self, signum=None) -> None:
        """Celery calls this after terminate_job(), which has done the work."""


class TaskPool(thread.TaskPool):
    """Celery's thread pool, with revoke(terminate=True) and the time limits (see above)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._running: dict[int, _Job] = {}  # thread id -> the job it runs
        self._deadlines: list[tuple[float, int, _Job, bool]] = []  # (when, order, job, soft?)
        self._order = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._watchdog: threading.Thread | None = None

    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None,
                 timeout=None, soft_timeout=None, timeout_callback=None, **_) -> ApplyResult:
        job = _Job(soft_timeout, timeout, timeout_callback)
        future: Future = self.executor.submit(self._run, job, target, args or (), kwargs or {},
                                              callback, accept_callback)
        return ApplyResult(future)

    def terminate_job(self, pid, signal=None) -> None:
        """revoke(terminate=True): `pid` is the id of the thread that runs the task."""
        with self._lock:
            job = self._running.get(pid)
            if job is not None:
                self._stop(job, Terminated(signal))

    def _run(self, job: _Job, target, args, kwargs, callback, accept_callback) -> None:
        job.thread = threading.get_ident()
        outcome = None
        try:
            try:
                with self._lock:
                    self._running[job.thread] = job
                    self._schedule(job)
                # Celery keeps this "pid" for the task, and hands it back to terminate_job().
                accept_callback(job.thread, time.monotonic())
                outcome = target(*args, **kwargs)
            finally:
                with self._lock:
                    self._running.pop(job.thread, None)
        except (TaskStopped, SoftTimeLimitExceeded) as stop:  # raised only while in _running
            with self._lock:
                self._running.pop(job.thread, None)
            if outcome is None:  # else it landed just after the task had finished
                outcome = _failed(job.stopped_by if isinstance(stop, TaskStopped) else stop)
        job.on_timeout = None  # its deadlines stay queued until due: keep them small
        callback(outcome)

    def _stop(self, job: _Job, reason: BaseException) -> None:
        """Raise TaskStopped in the job's thread, once (the lock is held)."""
        if job.stopped_by is None and self._running.get(job.thread) is job:
            job.stopped_by = reason
            raise_in_thread(job.thread, TaskStopped)

    # ---- time limits: one watchdog thread for the pool ---------------------------------

    def _schedule(self, job: _Job) -> None:
        now = time.monotonic()
        earliest = self._deadlines[0] if self._deadlines else None
        for seconds, soft in ((job.soft, True), (job.hard, False)):
            if seconds:
                heapq.heappush(self._deadlines, (now + seconds, next(self._order), job, soft))
        if self._deadlines and self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="time-limits", daemon=True)
            self._watchdog.start()
        if self._deadlines and self._deadlines[0] is not earliest:  # sooner than it sleeps for
            self._wake.notify()

    def _watch(self) -> None:
        while True:
            with self._lock:
                while not self._deadlines or self._deadlines[0][0] > time.monotonic():
                    wait = self._deadlines[0][0] - time.monotonic() if self._deadlines else None
                    self._wake.wait(wait)
                _, _, job, soft = heapq.heappop(self._deadlines)
                running = self._running.get(job.thread) is job and job.stopped_by is None
                report = job.on_timeout if running else None
                if running and soft:
                    raise_in_thread(job.thread, SoftTimeLimitExceeded)
                elif running:
                    self._stop(job, TimeLimitExceeded(job.hard))
            if report:  # Celery logs it; for the hard limit it also records the FAILURE
                report(soft, job.soft if soft else job.hard)
