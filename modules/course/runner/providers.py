"""What a step may ask for by parameter name, made once per lesson run and cleaned up at the end.

    async def a_step(client, settings): ...     # the runner passes both

Async steps all run on one event loop kept for the whole lesson, so an async client made for
one step still works in the next.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
from typing import Any, Callable

from course.console import console, waiting

# name -> ("module:attribute" of the thing or of a factory that takes no arguments, clean-up method)
# Imported only when a step asks, so a lesson without an LLM never starts one.
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "client": ("course.runner.providers:llm_client", "close"),
    "settings": ("course.settings:settings", None),
    "app": ("course.jobs.celery_app:app", None),
    "redis": ("course.jobs.redis_server:ensure_redis", None),  # starts redis-server on localhost if none answers
    "worker": ("course.jobs.workers:ensure_worker", "stop"),  # stopped at the end if started for the lesson
    "api": ("course.api.server:lesson_api", "close"),  # the job API (lesson 07), on a free port, stopped at the end
    # Workers lesson 06 starts, kills and starts again: its own queue, a short visibility timeout.
    "own_workers": ("course.jobs.own_worker:own_workers", "stop"),
}
SLOW_TO_STOP = {"worker", "api", "own_workers"}


def llm_client():
    """The async LLM client a step asks for as `client`, and one line on where it points."""
    from course import llm
    from course.console import notice

    client = llm.make_client()
    notice(f"LLM: {llm.describe()}")
    return client


class StepCaller:
    """Calls steps with what they ask for; async ones on one event loop kept for the lesson."""

    def __init__(self):
        self.loop = asyncio.Runner()
        self.made: dict[str, Any] = {}

    def call(self, step: Callable) -> Any:
        arguments = {name: self.provide(name) for name in inspect.signature(step).parameters}
        if inspect.iscoroutinefunction(step):
            return self.loop.run(step(**arguments))
        return step(**arguments)

    def provide(self, name: str) -> Any:
        if name not in self.made:
            if name not in PROVIDERS:
                raise TypeError(f"a step asked for {name!r}, which the runner does not provide")
            module_name, _, attribute = PROVIDERS[name][0].partition(":")
            thing = getattr(importlib.import_module(module_name), attribute)
            self.made[name] = thing() if inspect.isfunction(thing) else thing
        return self.made[name]

    def close(self) -> None:
        to_stop = [(name, thing) for name, thing in reversed(list(self.made.items())) if PROVIDERS[name][1]]
        # A worker's warm shutdown takes seconds: on a terminal a live line says so (a log needs none).
        slow = console.is_terminal and any(name in SLOW_TO_STOP for name, _ in to_stop)
        with waiting("Stopping what the lesson started") if slow else contextlib.nullcontext():
            for name, thing in to_stop:
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    outcome = getattr(thing, PROVIDERS[name][1])()
                    if inspect.isawaitable(outcome):
                        self.loop.run(outcome)
        with contextlib.suppress(Exception, KeyboardInterrupt):
            self.loop.close()
