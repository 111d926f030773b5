"""Run every lesson in order: `python -m course.runner.run_all [--no-pause]` (what `make course` does).

Each lesson runs as its own process, exactly as `python modules/NN_name.py` would run it.
A lesson that fails or is stopped (q or Ctrl-C) ends the course run with its exit code.
"""
import subprocess
import sys

from course.settings import ROOT

LESSONS = sorted((ROOT / "modules").glob("[0-9][0-9]_*.py"))


def want_next(lesson, args) -> bool:
    """On a terminal, ask before each lesson after the first; q ends the course run."""
    if "--no-pause" in args or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return True
    try:
        answer = input(f"\nNext: {lesson.stem}. Enter: start · q Enter: quit ")
    except EOFError:
        return True
    return answer.strip().lower() not in ("q", "quit")


def main(args: list[str]) -> int:
    for number, lesson in enumerate(LESSONS):
        try:
            if number and not want_next(lesson, args):
                return 0
            code = subprocess.call([sys.executable, str(lesson), *args])
        except KeyboardInterrupt:
            code = 130
        if code != 0:
            print(f"\nStopped at {lesson.name}. Run it alone with: python modules/{lesson.name}")
            return code
    print(f"\nAll {len(LESSONS)} lessons ran to the end.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
