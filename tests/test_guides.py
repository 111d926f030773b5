"""The guides say what the screens show: every step under the number and title the lesson
prints, every "try it yourself" edit applied to a copy of the lesson and run, with the outcome
the guide promises, and every make command a guide names is one the Makefile has."""
import json
import math
import re

import pytest

from conftest import MODULES, ROOT, run_lesson
from lesson_runs import LESSONS, SIM_SPEED
from test_screens import load

GUIDES = {name: ROOT / "docs" / f"{name}.md" for name in LESSONS}
HEADING = re.compile(r"^## Step (\d+) · (.+)$", re.MULTILINE)
TRY = re.compile(r"<!-- try: (\{.*?\}) -->", re.DOTALL)


def tries():
    for name, guide in GUIDES.items():
        if guide.exists():
            for number, found in enumerate(TRY.finditer(guide.read_text()), 1):
                yield pytest.param(name, json.loads(found.group(1)), id=f"{name}-try{number}")


@pytest.mark.parametrize("name", LESSONS)
def test_every_guide_names_every_step_as_the_screen_does(name):
    from course.runner.text import step_text

    assert GUIDES[name].exists(), f"lesson {name} has no guide in docs/"
    named = [(int(number), title.strip()) for number, title in HEADING.findall(GUIDES[name].read_text())]
    on_screen = [(number, step_text(step).title) for number, step in enumerate(load(name).STEPS, 1)]
    assert named == on_screen


def test_every_make_command_in_the_guides_and_readme_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for text in texts:
        # A command is code: `make x` inline, or a line of a fenced block that starts with make.
        commands = re.findall(r"`make ([a-z][a-z-]*)", text.read_text())
        commands += re.findall(r"^make ([a-z][a-z-]*)", text.read_text(), re.MULTILINE)
        for target in commands:
            assert target in targets, f"{text.name} names `make {target}`, which the Makefile lacks"


@pytest.mark.parametrize("name, edit", list(tries()))
def test_each_try_it_yourself_edit_gives_what_the_guide_says(name, edit, private_redis, tmp_path):
    source = (MODULES / f"{name}.py").read_text()
    assert source.count(edit["replace"]) == 1, f"{edit['replace']!r} must appear once in {name}.py"
    copy = tmp_path / "modules" / f"{name}.py"
    copy.parent.mkdir()
    copy.write_text(source.replace(edit["replace"], edit["with"]))
    process, figures = run_lesson(name, tmp_path, "--only", str(edit["step"]), timeout=300,
                                  lesson_file=copy, COLUMNS="80", SIM_SPEED=SIM_SPEED.get(name, "20"))
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    (step,) = figures.values()
    assert eval(edit["expect"], {"math": math}, dict(step)), (edit["expect"], step)
