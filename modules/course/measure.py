"""Measurements some lessons need that are not the idea they teach: memory, and lines of code.

    with peak_memory() as memory: ...        then memory.mib: the most the block held at once
    lines_of(function)                        lines of code, without docstring, comments, blanks
    lines_in("modules/02_concurrent_llm.py", "RequestsPerMinute")   the same, read from a file
    busiest(times, 0.1), histogram({"a": times}, 0.5)               how moments crowd together
"""
from __future__ import annotations

import ast
import bisect
import inspect
import textwrap
import tracemalloc
from collections import Counter
from typing import Callable

from course.settings import ROOT


class peak_memory:
    """`with peak_memory() as m: ...` then `m.mib`: the most memory Python allocated at once inside
    the block, above what it held when the block began (tracemalloc: the interpreter's own count,
    steadier than the process's resident size)."""

    def __enter__(self):
        self._started_here = not tracemalloc.is_tracing()
        if self._started_here:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        self.mib = 0.0
        return self

    def __exit__(self, *exc):
        self.mib = (tracemalloc.get_traced_memory()[1] - self._base) / 2**20
        if self._started_here:
            tracemalloc.stop()
        return False


def _code_lines(source: str) -> int:
    """Lines that hold code: no blank lines, no comment lines, no docstrings."""
    tree = ast.parse(textwrap.dedent(source))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = textwrap.dedent(source).splitlines()
    return sum(1 for number, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings)


def lines_of(thing: Callable) -> int:
    """The lines of code of a function or class (decorators included)."""
    return _code_lines(inspect.getsource(thing))


def lines_in(path: str, name: str) -> int:
    """The lines of code of the function or class `name` defined at the top of a file of the repo."""
    source = (ROOT / path).read_text()
    for node in ast.parse(source).body:
        if getattr(node, "name", None) == name:
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            return _code_lines("\n".join(source.splitlines()[first - 1:node.end_lineno]))
    raise LookupError(f"{path} defines no {name}")


def busiest(times: list[float], window: float) -> int:
    """The most of these moments (seconds) that fall within any `window` seconds."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, at + window) - n for n, at in enumerate(ordered)), default=0)


def histogram(series: dict[str, list[float]], every: float, width: int = 24) -> list[dict]:
    """Rows of a text histogram, one per `every` seconds: how many moments of each series fall in
    it, with a bar. One column per series, the bars on one scale."""
    counts = {name: Counter(int(at // every) for at in times) for name, times in series.items()}
    rows = 1 + max((max(c) for c in counts.values() if c), default=0)
    longest = max((n for c in counts.values() for n in c.values()), default=1)
    return [{"from_s": row * every,
             **{name: f"{c[row]:>3} " + "█" * round(width * c[row] / longest) for name, c in counts.items()}}
            for row in range(rows)]
