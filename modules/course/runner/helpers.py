"""The few helpers a step may use: a timer, a progress bar, and showing a helper's code too."""
from __future__ import annotations

import contextlib
import time
from typing import Callable

from course.console import console


class timer:
    """`with timer() as t: ...` then `t.seconds` holds the wall time of the block."""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


@contextlib.contextmanager
def progress_bar(description: str, total: int):
    """`with progress_bar("embedding", 50) as advance: ... advance()` draws a live bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda steps=1: progress.advance(task, steps)


def shows(*helpers: Callable) -> Callable:
    """Decorator: show these helpers' source above the step's own (the code that runs)."""

    def mark(step: Callable) -> Callable:
        step.__shows__ = list(helpers)
        return step

    return mark
