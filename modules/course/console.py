"""The one terminal the course writes to, and how any part of it says "cannot go on".

Every module that talks to the learner prints through `console`; `notice()` is one dim line
about the machinery (what was started, where it runs). `Stop` is a missing piece or bad input:
the step runner prints its message in a red panel and exits non-zero, with no traceback.
"""
from __future__ import annotations

import contextlib
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

console = Console(highlight=False)


class Stop(Exception):
    """A missing piece or bad input: the runner prints the message and exits non-zero."""


def notice(message: str) -> None:
    """One dim line about the machinery (what was started, where it runs)."""
    console.print(Text(f"· {message}", style="dim"))


@contextlib.contextmanager
def waiting(what: str):
    """A live line while the block runs ("what · 2.4 s"), so no wait is ever silent.

    On a terminal it ticks every tenth of a second and disappears when the block ends; in a log
    or a test (not a terminal) it prints `what ...` once.
    """
    if not console.is_terminal:
        console.print(Text(f"· {what} ...", style="dim"))
        yield
        return
    start = time.monotonic()

    def line() -> Text:
        return Text(f"· {what} · {time.monotonic() - start:.1f} s", style="dim")

    with Live(line(), console=console, transient=True, refresh_per_second=10, get_renderable=line):
        yield
