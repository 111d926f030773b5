"""What the runner reads from docstrings: a lesson's title, intro and recap; a step's title,
explanation and the sentence it says after it ran.

A lesson's docstring:                      A step's docstring:

    Lesson 01: asyncio basics                  gather: start them all, wait once

    Run:  make lesson N=01                     Five calls one after another take ...
    You learn: ...
                                               Result: gather was {speedup_x} faster.
    Intro paragraphs ...

    Recap:
    - the rules to keep, one a line

`Result:` is filled with the step's own figures, written by `numbers.figure`, so the sentence
can only say what the step measured.
"""
from __future__ import annotations

import inspect
import re
import string
from dataclasses import dataclass
from typing import Any, Callable

from course.runner import numbers

LABEL = re.compile(r"^[A-Z][\w ]{0,15}:\s")  # "Run: ...", "You learn: ..." keep their own line


@dataclass
class StepText:
    title: str
    explanation: str
    result: str  # a template: "{name}" is the figure `name`, written with its unit


@dataclass
class LessonText:
    title: str
    intro: str
    recap: list[str]


def unwrap(text: str) -> str:
    """Join a docstring's hard-wrapped lines into paragraphs, so the terminal wraps them."""
    lines = [line.strip() for line in text.strip().splitlines()]
    joined = lines[:1]
    for line in lines[1:]:
        if not line or not joined[-1] or LABEL.match(line) or line.startswith("- "):
            joined.append(line)
        else:
            joined[-1] = f"{joined[-1]} {line}"
    return "\n".join(joined)


def step_text(step: Callable) -> StepText:
    doc = inspect.getdoc(step) or step.__name__
    title, _, rest = doc.partition("\n")
    body, _, result = rest.partition("\nResult:")
    return StepText(title.strip(), unwrap(body), unwrap(result))


def lesson_text(doc: str | None) -> LessonText:
    title, _, rest = (doc or "Lesson").partition("\n")
    intro, _, recap = rest.partition("\nRecap:")
    rules = [line.strip()[2:] for line in unwrap(recap).splitlines() if line.strip().startswith("- ")]
    return LessonText(title.strip(), unwrap(intro), rules)


class _Figures(string.Formatter):
    """`{name}` becomes the figure `name` written with its unit; an unknown name is a bug."""

    def __init__(self, figures: dict[str, Any]):
        self.figures = figures

    def get_value(self, key, args, kwargs):
        if key not in self.figures:
            raise KeyError(f"the Result: sentence names {key!r}, which the step did not return")
        return numbers.figure(key, self.figures[key])


def fill(template: str, figures: dict[str, Any]) -> str:
    return _Figures(figures).format(template) if template else ""


def named(template: str) -> set[str]:
    """The figures a Result: sentence names."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}
