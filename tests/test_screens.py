"""What a learner reads, in an 80-column terminal: every step fits one screen, nothing is cut,
code never wraps, and every lesson ends with its recap and the next command."""
import importlib.util
import re
import sys

import pytest

from conftest import MODULES
from lesson_runs import LESSONS

WIDTH, MOST_LINES = 80, 50
CODE_WIDTH = WIDTH - 4  # the code panel's border and padding take four columns
STEP = re.compile(r"^Step (\d+)/(\d+) · ", re.MULTILINE)


def load(name):
    spec = importlib.util.spec_from_file_location(f"lesson_{name}", MODULES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # inspect.getsource finds classes through sys.modules
    spec.loader.exec_module(module)
    return module


def screens(output: str) -> tuple[list[str], str]:
    """The text of each step, and what follows the last one (the recap)."""
    body, _, recap = output.partition(": recap ")
    starts = [match.start() for match in STEP.finditer(body)]
    return [body[a:b] for a, b in zip(starts, [*starts[1:], len(body)])], recap


@pytest.mark.parametrize("name", LESSONS)
def test_every_step_fits_one_80_column_screen(name, lesson_run):
    process, _ = lesson_run(name)
    steps, _ = screens(process.stdout)
    assert len(steps) == len(load(name).STEPS)
    for number, text in enumerate(steps, 1):
        height = len(text.rstrip("\n").splitlines())
        assert height <= MOST_LINES, f"{name} step {number} is {height} lines tall"


@pytest.mark.parametrize("name", LESSONS)
def test_nothing_is_cut_or_wider_than_the_terminal(name, lesson_run):
    output = lesson_run(name)[0].stdout
    assert "…" not in output, [line for line in output.splitlines() if "…" in line][:3]
    assert max(len(line) for line in output.splitlines()) <= WIDTH


@pytest.mark.parametrize("name", LESSONS)
def test_shown_code_never_wraps(name):
    from course.runner import show

    for number, step in enumerate(load(name).STEPS, 1):
        for thing in [*getattr(step, "__shows__", []), step]:
            for line in show.source_of(thing).splitlines():
                assert len(line) <= CODE_WIDTH, f"{name} step {number}, {thing.__name__}: {line}"


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_ends_with_its_recap_and_the_next_command(name, lesson_run):
    _, recap = screens(lesson_run(name)[0].stdout)
    assert recap.count("•") >= 3, "a recap of at least three rules"
    following = LESSONS[LESSONS.index(name) + 1:]
    if following:
        assert f"Next: make lesson N={following[0][:2]}" in recap
    else:
        assert "That was the last lesson" in recap


def test_a_long_dict_in_a_table_cell_puts_one_item_a_line():
    from course.runner import show

    assert show.cell("progress", {"current": 1, "total": 5}) == "current 1, total 5"
    options = {"visibility_timeout": 300, "unacked_restore_interval": 10, "unacked_restore_throttle": 1}
    assert show.cell("options", options).splitlines() == [
        "visibility timeout 300", "unacked restore interval 10", "unacked restore throttle 1"]
