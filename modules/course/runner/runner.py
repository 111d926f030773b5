"""The step runner: a lesson is a list of step functions, shown and run one at a time.

For each step the runner shows its number, title and explanation (the docstring), its source
(the code shown is the code that runs), runs it with a live line so no wait is silent, and draws
the figures it returned. Between steps it pauses on a terminal; `--no-pause`, a non-terminal or
COURSE_NO_PAUSE=1 run straight through. `--list` prints the steps, `--step N` starts at N,
`--only N` runs step N alone. The lesson ends with its recap and the command of the next one.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import sys
import time
from pathlib import Path
from typing import Callable

from rich.live import Live
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from course.console import Stop, console
from course.runner import lessons, show
from course.runner.explain import explain
from course.runner.providers import StepCaller
from course.runner.records import Record
from course.runner.text import fill, lesson_text, named, step_text
from course.settings import settings


class Quit(Exception):
    """The learner typed q at a pause."""


def run(steps: list[Callable], argv: list[str] | None = None) -> None:
    """Run a lesson's steps; never returns (exit 0, 1 when it cannot go on, 130 on Ctrl-C)."""
    module = sys.modules[steps[0].__module__]
    lesson = Path(module.__file__)
    text = lesson_text(inspect.getdoc(module))
    options = _parse(argv, len(steps))
    if options.list:
        for number, step in enumerate(steps, 1):
            console.print(f"{number:>2}. {step_text(step).title}")
        sys.exit(0)

    pausing = _interactive() and not options.no_pause
    in_sequence = os.environ.get("COURSE_SEQUENCE") == "1"
    console.print(Panel(Text(text.intro), title=f"[bold]{text.title}[/]", border_style="blue", padding=(0, 1)))
    chosen = [options.only] if options.only else list(range(options.step, len(steps) + 1))
    record = Record(lesson.stem)
    caller = StepCaller()
    code = 0
    try:
        for number in chosen:
            run_step(caller, record, steps[number - 1], number, len(steps))
            if pausing and number != chosen[-1] and not _pause("Enter: next step · q Enter: quit"):
                raise Quit(number + 1)
        if chosen[-1] == len(steps):
            record.complete()
        _recap(text, lesson)
        following = lessons.after(lesson)
        if pausing and in_sequence and following and not _pause(
                f"Enter: lesson {lessons.number(following)} · q Enter: quit"):
            raise Quit(None)
    except Quit as where:
        resume = where.args[0]
        hint = lessons.command(lesson, resume) if resume else lessons.command(lessons.after(lesson) or lesson)
        console.print(f"[dim]Quit. Carry on later with: {hint}[/]")
        code = lessons.QUIT if in_sequence else 0
    except KeyboardInterrupt:
        console.print("\n[yellow]Stopped. Everything the lesson started is being shut down.[/]")
        code = 130
    except Stop as stop:
        console.print(Panel(Text(str(stop)), title="cannot go on", border_style="red"))
        code = 1
    except Exception as error:
        message = explain(error)
        if message is None:
            raise  # a bug: the traceback is the most useful thing to show
        console.print(Panel(Text(message), title="cannot go on", border_style="red"))
        code = 1
    finally:
        caller.close()
    sys.exit(code)


def run_step(caller: StepCaller, record: Record, step: Callable, number: int, total: int) -> None:
    text = step_text(step)
    console.print(show.header(number, total, text))
    console.print(show.code(step))
    with _running():
        figures = caller.call(step)
    if figures is None:
        return
    if not isinstance(figures, dict):
        raise TypeError(f"step {step.__name__} must return a dict of figures, not {type(figures).__name__}")
    console.print(show.result(figures, fill(text.result, figures), said=named(text.result)))
    record.step(number, step.__name__, text.title, figures)


def _recap(text, lesson: Path) -> None:
    console.print()
    console.print(Rule(f"[bold]{text.title}: recap[/]", align="left"))
    rules = Table.grid(padding=(0, 1))
    rules.add_column(style="cyan")
    rules.add_column()
    for rule in text.recap:
        rules.add_row(" •", rule)
    console.print(rules)
    following = lessons.after(lesson)
    if following:
        console.print(Text.assemble(("\nNext: ", "bold"), (lessons.command(following), "bold cyan"),
                                    f"  ({lessons.title(following)})"))
    else:
        console.print(Text.assemble(("\nThat was the last lesson. ", "bold"),
                                    "Every lesson again: make course · the guides: docs/README.md"))


@contextlib.contextmanager
def _running():
    """A live line while the step runs ("running · 3.1 s"), on a terminal only."""
    if not console.is_terminal:
        yield
        return
    start = time.monotonic()

    def line() -> Text:
        return Text(f"· running · {time.monotonic() - start:.1f} s", style="dim")

    with Live(line(), console=console, transient=True, refresh_per_second=5, get_renderable=line):
        yield


def _parse(argv: list[str] | None, count: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the lesson step by step.")
    parser.add_argument("--no-pause", action="store_true", help="run straight through")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--step", type=int, default=1, metavar="N", help="start at step N")
    parser.add_argument("--only", type=int, metavar="N", help="run step N alone")
    options = parser.parse_args(argv)
    for name in ("step", "only"):
        value = getattr(options, name)
        if value is not None and not 1 <= value <= count:
            parser.exit(2, f"--{name} must be between 1 and {count}; --list shows the steps.\n")
    options.no_pause = options.no_pause or settings.no_pause
    return options


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _pause(prompt: str) -> bool:
    """Wait for Enter (True) or q (False). Keys pressed while the step ran are thrown away."""
    with contextlib.suppress(ImportError, OSError):
        import termios

        termios.tcflush(sys.stdin, termios.TCIFLUSH)
    try:
        answer = console.input(f"[dim]{prompt}[/] ")
    except EOFError:
        return True
    return answer.strip().lower() not in ("q", "quit")
