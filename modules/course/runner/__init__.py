"""The step runner every lesson uses: `run(STEPS)`, and the few helpers a step may use."""
from course.console import Stop
from course.runner.helpers import progress_bar, shows, timer
from course.runner.runner import run

__all__ = ["Stop", "progress_bar", "run", "shows", "timer"]
