"""`python -m course.runner [--lesson N] [lesson options]`: what `make course` and `make lesson` run."""
import sys

from course.runner.lessons import main

sys.exit(main(sys.argv[1:]))
