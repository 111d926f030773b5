"""The one terminal the course writes to, and how any part of it says "cannot go on".

Every module that talks to the learner prints through `console`; `notice()` is one dim line
about the machinery (what was started, where it runs). `Stop` is a missing piece or bad input:
the step runner prints its message in a red panel and exits non-zero, with no traceback.
"""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

console = Console(highlight=False)


class Stop(Exception):
    """A missing piece or bad input: the runner prints the message and exits non-zero."""


def notice(message: str) -> None:
    """One dim line about the machinery (what was started, where it runs)."""
    console.print(Text(f"· {message}", style="dim"))
