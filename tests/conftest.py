"""Shared test fixtures: a private simulator, and running a lesson as a learner does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "modules"


@pytest.fixture(scope="session")
def simulator():
    """A simulated LLM of the tests' own, fast (SIM_SPEED 20), on a free port."""
    from course.simulator import launcher

    with launcher.start(speed=20) as running:
        yield running


def lesson_env(**overrides: str) -> dict[str, str]:
    """The environment a lesson runs in under test: no pausing, no real key, plain output."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "SIM_", "COURSE_", "REDIS_URL"))}
    env.update(COURSE_NO_PAUSE="1", TTY_INTERACTIVE="0", PYTHONUNBUFFERED="1", COLUMNS="120")
    env.update(overrides)
    return env


def run_lesson(name: str, tmp_path: Path, *args: str, timeout: float = 120, **env: str):
    """Run `python modules/<name>.py --no-pause` as the README says; return (process, figures)."""
    report = tmp_path / f"{name}.json"
    process = subprocess.run(
        [sys.executable, str(MODULES / f"{name}.py"), "--no-pause", *args],
        cwd=ROOT, env=lesson_env(COURSE_REPORT=str(report), **env),
        capture_output=True, text=True, timeout=timeout,
    )
    figures = json.loads(report.read_text()) if report.exists() else {}
    return process, figures
