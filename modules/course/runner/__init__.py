"""The step runner every lesson uses."""
from course.runner.steps import *  # noqa: F401,F403
from course.runner.steps import Result, Stop, figures_table, notice, progress_bar, rows_table, run, shows, timer, timings  # noqa: F401
