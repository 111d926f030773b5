"""The lessons in order: run every one (`make course`), run one (`make lesson N=2 STEP=3`).

`python -m course.runner` is the command behind both (see `__main__.py`).

Each lesson runs as its own process, exactly as `python modules/NN_name.py` would run it.
`q` at any pause leaves the whole course; a lesson that fails ends the run with its exit code.
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

from course.settings import ROOT

LESSONS = sorted((ROOT / "modules").glob("[0-9][0-9]_*.py"))
QUIT = 3  # a lesson's exit code when the learner quits it inside `make course`


def number(lesson: Path) -> str:
    return lesson.name[:2]


def title(lesson: Path) -> str:
    """ "Lesson 01: asyncio basics" -> "asyncio basics", read without importing the lesson."""
    doc = ast.get_docstring(ast.parse(lesson.read_text())) or lesson.stem
    return doc.partition("\n")[0].partition(":")[2].strip() or lesson.stem


def find(wanted: str) -> Path | None:
    """The lesson for "2", "02" or "02_concurrent_llm"; None when there is no such lesson."""
    wanted = wanted.strip()
    if wanted.isdigit():
        wanted = f"{int(wanted):02d}"
    return next((lesson for lesson in LESSONS if lesson.stem == wanted or number(lesson) == wanted), None)


def after(lesson: Path) -> Path | None:
    later = [other for other in LESSONS if other.name > lesson.name]
    return later[0] if later else None


def command(lesson: Path, step: int | None = None) -> str:
    """The command a learner types to run a lesson (from a step on)."""
    return f"make lesson N={number(lesson)}" + (f" STEP={step}" if step and step > 1 else "")


def listing() -> str:
    return "\n".join(f"  {command(lesson):<18} {title(lesson)}" for lesson in LESSONS)


def run(lesson: Path, args: list[str], in_sequence: bool = False) -> int:
    env = dict(os.environ, COURSE_SEQUENCE="1") if in_sequence else None
    try:
        return subprocess.call([sys.executable, str(lesson), *args], env=env)
    except KeyboardInterrupt:
        return 130


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make course", description="Run the lessons.")
    parser.add_argument("--lesson", metavar="N", help="run only lesson N (make lesson N=2)")
    options, args = parser.parse_known_args(argv)

    if options.lesson is not None:
        lesson = find(options.lesson)
        if lesson is None:
            what = f"There is no lesson {options.lesson!r}." if options.lesson.strip() else "Which lesson?"
            print(f"{what} Run one of:\n{listing()}", file=sys.stderr)
            return 2
        return run(lesson, args)

    for lesson in LESSONS:
        code = run(lesson, args, in_sequence=True)
        if code == QUIT:
            return 0
        if code != 0:
            print(f"\nStopped in lesson {number(lesson)}. Run it again alone with: {command(lesson)}")
            return code
    print(f"\nAll {len(LESSONS)} lessons ran to the end.")
    return 0
