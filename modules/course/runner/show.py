"""How a step looks on screen: its header, its code, and what it measured.

A step returns a dict of figures. The runner draws it, so the step's code stays the code that
teaches:
  - a list of dicts becomes a table, titled by its name;
  - a figure the Result: sentence states is not repeated;
  - in a step without a table, two or more seconds (`*_s` numbers) become bars side by side,
    `ideal_*` ones drawn dim;
  - everything else is a line `name  value`, each value written by `numbers.figure`;
  - names that start with `_` are kept for the record but not shown.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, Callable

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from course.runner import numbers
from course.runner.text import StepText

BAR_WIDTH = 24


def header(number: int, total: int, text: StepText) -> RenderableType:
    parts: list[RenderableType] = [Text(), Rule(f"[bold cyan]Step {number}/{total} · {text.title}[/]", align="left")]
    if text.explanation:
        parts.append(Text(text.explanation))
    return Group(*parts)


def code(step: Callable) -> Panel:
    shown = [*getattr(step, "__shows__", []), step]
    source = "\n\n".join(source_of(thing) for thing in shown)
    syntax = Syntax(source, "python", theme="monokai", word_wrap=True, background_color="default")
    return Panel(syntax, title="code", title_align="left", border_style="dim")


def source_of(thing: Callable) -> str:
    """The source of a function or class, without its docstring (the runner showed it) and
    without `@shows(...)` (how the runner shows it, not what it teaches)."""
    lines = textwrap.dedent(inspect.getsource(thing)).splitlines()
    tree = ast.parse("\n".join(lines))
    node = tree.body[0]
    drop: list[tuple[int, int]] = []
    body = node.body
    if (inspect.isfunction(thing) or inspect.ismethod(thing)) and body and isinstance(body[0], ast.Expr) \
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        drop.append((body[0].lineno, body[0].end_lineno))
    for decorator in getattr(node, "decorator_list", []):
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(called, "id", getattr(called, "attr", None)) == "shows":
            drop.append((decorator.lineno, decorator.end_lineno))
    for first, last in sorted(drop, reverse=True):
        del lines[first - 1:last]
    return "\n".join(lines)


def result(figures: dict[str, Any], sentence: str, said: set[str] = frozenset()) -> Panel:
    """The figures a step returned; `said` are the names its sentence already states."""
    shown = {name: value for name, value in figures.items() if not name.startswith("_")}
    tables = {name: value for name, value in shown.items()
              if isinstance(value, list) and value and all(isinstance(row, dict) for row in value)}
    shown = {name: value for name, value in shown.items() if name not in said and name not in tables}
    seconds = {name: value for name, value in shown.items()
               if numbers.unit_of(name) == "_s" and isinstance(value, (int, float)) and not isinstance(value, bool)}
    if len(seconds) < 2 or tables:
        seconds = {}
    rest = {name: value for name, value in shown.items() if name not in seconds}

    parts: list[RenderableType] = []
    if seconds:
        parts.append(bars(seconds))
    parts += [rows(value, title=numbers.label(name)) for name, value in tables.items()]
    if rest:
        parts.append(pairs(rest))
    if sentence:
        parts.append(Text(sentence, style="bold green"))
    return Panel(Group(*_spaced(parts)), title="result", title_align="left", border_style="green", padding=(0, 1))


def bars(seconds: dict[str, float]) -> Table:
    longest = max(seconds.values()) or 1
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(overflow="fold")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    for name, value in seconds.items():
        ideal = name.startswith("ideal_")
        bar = "█" * max(1, round(BAR_WIDTH * value / longest))
        style = "dim" if ideal else "magenta"
        table.add_row(Text(numbers.label(name), style="dim" if ideal else "cyan"),
                      Text(numbers.figure(name, value), style="dim" if ideal else "bold"), Text(bar, style=style))
    return table


def rows(items: list[dict[str, Any]], title: str | None = None) -> Table:
    """A table whose columns are the keys of the first row; long cells fold, never cut.
    Rows with a cell of several lines are ruled apart, so each row reads as one."""
    several_lines = any("\n" in cell(key, value) for row in items for key, value in row.items())
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, show_lines=several_lines, header_style="bold cyan",
                  padding=(0, 1), pad_edge=False)
    for key in items[0]:
        table.add_column(numbers.label(key), overflow="fold")
    for row in items:
        table.add_row(*(Text(cell(key, value)) for key, value in row.items()))
    return table


def cell(key: str, value: Any) -> str:
    """A table cell; a long dict puts one item a line, so its column stays narrow."""
    text = numbers.figure(key, value)
    if isinstance(value, dict) and len(text) > LONG_CELL:
        return "\n".join(numbers.figure(key, {name: item}) for name, item in value.items())
    return text


LONG_CELL = 40  # characters: "current 1, total 5" stays on one line, a transport's options do not


def pairs(figures: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(style="cyan", no_wrap=True, max_width=28, overflow="fold")
    table.add_column(style="bold", overflow="fold")
    for name, value in figures.items():
        table.add_row(Text(numbers.label(name)), Text(numbers.figure(name, value)))
    return table


def _spaced(parts: list[RenderableType]) -> list[RenderableType]:
    spaced: list[RenderableType] = []
    for part in parts:
        if spaced:
            spaced.append(Text())
        spaced.append(part)
    return spaced
