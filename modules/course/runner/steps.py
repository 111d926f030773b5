"""The step runner every lesson uses, and the few rich helpers its steps return.

A lesson is a list of step functions. For each step the runner shows its number, its title and
explanation (the docstring), its source (the code shown is the code that runs), runs it, and
shows what it measured. Between steps it pauses on a terminal; `--no-pause`, a non-terminal
or COURSE_NO_PAUSE=1 run straight through. `--list` prints the steps, `--step N` starts at N.

A step asks for what it needs by parameter name (`client`, `settings`, ...; see PROVIDERS), and
the runner makes each thing once per lesson run. Async steps all run on one event loop, so an
async client made for one step still works in the next.
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import importlib
import inspect
import json
import os
import re
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from course.settings import settings

from course.console import Stop, console, notice  # noqa: E402,F401

# What a step may ask for by parameter name: "module:attribute" of the thing itself or of a
# factory that takes no arguments, and the name of its clean-up method, if any.
# Imported only when a step asks, so a lesson without an LLM never starts one.
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "client": ("course.runner.steps:llm_client", "close"),
    "settings": ("course.settings:settings", None),
    "app": ("course.jobs.celery_app:app", None),
    "redis": ("course.jobs.redis_server:ensure_redis", None),  # a Redis client; starts redis-server on localhost if none answers
    "worker": ("course.jobs.workers:ensure_worker", "stop"),  # a worker that answers; stopped at the end if started here
}


@dataclass
class Result:
    """What a step measured (`figures`, read by the tests) and how to show it (`view`)."""

    figures: dict[str, Any] = field(default_factory=dict)
    view: RenderableType | None = None
    note: str | None = None

    def renderable(self) -> RenderableType:
        parts: list[RenderableType] = [self.view if self.view is not None else figures_table(self.figures)]
        if self.note:
            parts.append(Text(self.note, style="bold green"))
        return Group(*parts)


# ---- helpers that steps use to show measurements ---------------------------------------


class timer:
    """`with timer() as t: ...` then `t.seconds` holds the wall time of the block."""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


def figures_table(figures: dict[str, Any], title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, box=None, padding=(0, 2))
    table.add_column(style="cyan")
    table.add_column(style="bold")
    for name, value in figures.items():
        table.add_row(name.replace("_", " "), _format(value))
    return table


def timings(rows: dict[str, float], ideal: dict[str, float] | None = None, title: str | None = None) -> Table:
    """Measured seconds side by side, with a bar each and, where known, the ideal."""
    ideal = ideal or {}
    longest = max(rows.values(), default=0) or 1
    table = Table(title=title, box=None, padding=(0, 2), header_style="bold")
    table.add_column("")
    table.add_column("measured", justify="right")
    table.add_column("ideal", justify="right", style="dim")
    table.add_column("", min_width=30)
    for name, seconds in rows.items():
        bar = "█" * max(1, round(30 * seconds / longest))
        best = f"{ideal[name]:.2f} s" if name in ideal else ""
        table.add_row(name, f"{seconds:.2f} s", best, Text(bar, style="magenta"))
    return table


def rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """A table whose columns are the keys of the first row."""
    table = Table(title=title, header_style="bold", padding=(0, 1))
    for key in (rows[0] if rows else {}):
        table.add_column(key.replace("_", " "))
    for row in rows:
        table.add_row(*(_format(v) for v in row.values()))
    return table


@contextlib.contextmanager
def progress_bar(description: str, total: int):
    """`with progress_bar("embedding", 50) as advance: ... advance()`"""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda steps=1: progress.advance(task, steps)


def llm_client():
    """The async LLM client a step asks for as `client`, and one line on where it points."""
    from course import llm

    client = llm.make_client()
    notice(f"LLM: {llm.describe()}")
    return client


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


# ---- the runner ----------------------------------------------------------------------


def run(steps: list[Callable], argv: list[str] | None = None) -> None:
    """Run a lesson's steps; never returns (exits with 0, 1 on a Stop, 130 on Ctrl-C)."""
    module = sys.modules[steps[0].__module__]
    title, _, intro = (inspect.getdoc(module) or "Lesson").partition("\n")
    options = _parse(argv, len(steps))
    if options.list:
        for number, step in enumerate(steps, 1):
            console.print(f"{number:>2}. {_title(step)}")
        sys.exit(0)

    pausing = _interactive() and not options.no_pause
    console.print(Panel(Text(_unwrap(intro)), title=f"[bold]{title}[/]", border_style="blue", padding=(1, 2)))
    runner = _Runner()
    code = 0
    try:
        for number in range(options.step, len(steps) + 1):
            step = steps[number - 1]
            _show_step(step, number, len(steps))
            result = runner.call(step)
            if result is not None:
                console.print(Panel(_renderable(result), title="result", border_style="green", padding=(1, 2)))
                _report(step, result)
            if pausing and number < len(steps) and not _wait_for_enter():
                console.print(f"[dim]Quit. Carry on later with: --step {number + 1}[/]")
                break
        console.print(Rule(f"[bold]end of {title.split(':')[0]}[/]"))
    except KeyboardInterrupt:
        console.print("\n[yellow]Stopped. Everything the lesson started is being shut down.[/]")
        code = 130
    except Stop as stop:
        console.print(Panel(Text(str(stop)), title="cannot go on", border_style="red"))
        code = 1
    except Exception as error:  # an LLM error has a known cause: say it plainly
        message = _explain(error)
        if message is None:
            raise
        console.print(Panel(Text(message), title="cannot go on", border_style="red"))
        code = 1
    finally:
        runner.close()
    sys.exit(code)


def _parse(argv: list[str] | None, count: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the lesson step by step.")
    parser.add_argument("--no-pause", action="store_true", help="run straight through")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--step", type=int, default=1, metavar="N", help="start at step N")
    options = parser.parse_args(argv)
    if not 1 <= options.step <= count:
        parser.exit(2, f"--step must be between 1 and {count}; --list shows the steps.\n")
    options.no_pause = options.no_pause or settings.no_pause
    return options


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _wait_for_enter() -> bool:
    try:
        answer = console.input("[dim]Enter: next step · q Enter: quit[/] ")
    except EOFError:
        return True
    return answer.strip().lower() not in ("q", "quit")


def _title(step: Callable) -> str:
    return (inspect.getdoc(step) or step.__name__).partition("\n")[0]


def _show_step(step: Callable, number: int, total: int) -> None:
    doc = inspect.getdoc(step) or ""
    title, _, explanation = doc.partition("\n")
    console.print()
    console.print(Rule(f"[bold cyan]Step {number}/{total} · {title}[/]", align="left"))
    if explanation.strip():
        console.print(Text(_unwrap(explanation)))
    code = "\n\n".join(_source(shown) for shown in [*getattr(step, "__shows__", []), step])
    syntax = Syntax(code, "python", theme="monokai", word_wrap=True, background_color="default")
    console.print(Panel(syntax, title="code", title_align="left", border_style="dim"))


LABEL = re.compile(r"^[A-Z][\w ]{0,15}:\s")  # "Run: ...", "You learn: ..." keep their own line


def _unwrap(text: str) -> str:
    """Join a docstring's hard-wrapped lines into paragraphs, so the terminal wraps them."""
    lines = [line.strip() for line in text.strip().splitlines()]
    joined = lines[:1]
    for line in lines[1:]:
        if not line or not joined[-1] or LABEL.match(line):
            joined.append(line)
        else:
            joined[-1] = f"{joined[-1]} {line}"
    return "\n".join(joined)


def shows(*helpers: Callable) -> Callable:
    """Decorator: also show these helpers' source above the step's own."""

    def mark(step: Callable) -> Callable:
        step.__shows__ = list(helpers)
        return step

    return mark


def _source(obj: Callable) -> str:
    """The source of a function or class, without the docstring the runner already showed."""
    lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
    tree = ast.parse("\n".join(lines))
    body = tree.body[0].body
    if inspect.isfunction(obj) and body and isinstance(body[0], ast.Expr) \
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        del lines[body[0].lineno - 1:body[0].end_lineno]
    return "\n".join(lines)


def _renderable(result: Any) -> RenderableType:
    if isinstance(result, Result):
        return result.renderable()
    return result


def _report(step: Callable, result: Any) -> None:
    """Append what the step measured to COURSE_REPORT (a JSON file) when it is set."""
    path = os.environ.get("COURSE_REPORT")
    if not path or not isinstance(result, Result):
        return
    try:
        with open(path) as file:
            report = json.load(file)
    except (OSError, ValueError):
        report = {}
    report[step.__name__] = result.figures
    with open(path, "w") as file:
        json.dump(report, file, indent=2, default=str)


def _explain(error: BaseException) -> str | None:
    from course import llm

    return llm.explain(error)


class _Runner:
    """Calls steps with what they ask for; async ones on one event loop kept for the lesson."""

    def __init__(self):
        self.loop_runner = asyncio.Runner()
        self.made: dict[str, Any] = {}

    def call(self, step: Callable) -> Any:
        arguments = {name: self._provide(name) for name in inspect.signature(step).parameters}
        if inspect.iscoroutinefunction(step):
            return self.loop_runner.run(step(**arguments))
        return step(**arguments)

    def _provide(self, name: str) -> Any:
        if name not in self.made:
            if name not in PROVIDERS:
                raise TypeError(f"a step asked for {name!r}, which the runner does not provide")
            target, _ = PROVIDERS[name]
            module_name, _, attribute = target.partition(":")
            thing = getattr(importlib.import_module(module_name), attribute)
            self.made[name] = thing() if inspect.isfunction(thing) else thing
        return self.made[name]

    def close(self) -> None:
        for name, thing in reversed(list(self.made.items())):
            cleanup = PROVIDERS[name][1]
            if cleanup is None:
                continue
            with contextlib.suppress(Exception, KeyboardInterrupt):
                outcome = getattr(thing, cleanup)()
                if inspect.isawaitable(outcome):
                    self.loop_runner.run(outcome)
        with contextlib.suppress(Exception, KeyboardInterrupt):
            self.loop_runner.close()
