"""Each lesson runs once per test session, as a learner runs it (`--no-pause`, not a terminal),
80 columns wide, against the tests' own simulator and Redis. The lesson tests read what it
measured; the screen tests read what it printed."""
from __future__ import annotations

import pytest

from conftest import MODULES, run_lesson

# How much faster than real time the simulated LLM answers in each lesson's run: fast enough
# for the suite, slow enough that latencies stay well above the client's own overhead.
SIM_SPEED = {"02_concurrent_llm": "5", "04_background_task": "5", "06_resilience": "5",
             "07_job_api": "5", "08_scaling": "5",
             "09_production": "5"}
LESSONS = sorted(path.stem for path in MODULES.glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="session")
def lesson_run(private_redis, tmp_path_factory):
    """`lesson_run("01_asyncio_basics")` -> (completed process, {step name: figures})."""
    runs = {}

    def run(name: str):
        if name not in runs:
            runs[name] = run_lesson(name, tmp_path_factory.mktemp(name), timeout=600, COLUMNS="80",
                                    SIM_SPEED=SIM_SPEED.get(name, "20"), WORKER_WAIT="0.5")
        return runs[name]

    return run


@pytest.fixture(scope="session")
def lesson_figures(lesson_run):
    """`lesson_figures("03_celery_setup", "Started a worker")` -> {step name: figures}, once the
    lesson ran to the end with no traceback and printed every line given."""
    def figures(name: str, *says: str) -> dict:
        process, figures = lesson_run(name)
        assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
        assert "Traceback" not in process.stdout + process.stderr
        for line in says:
            assert line in process.stdout, f"{name} never said {line!r}"
        return figures

    return figures
