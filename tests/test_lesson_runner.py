"""The step runner as a learner drives it: --list, --step, --only, make lesson, q at a pause,
keys pressed during a step, and a clean stop on Ctrl-C that leaves nothing running."""
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time

from conftest import MODULES, ROOT, lesson_env, run_lesson

LESSON = "01_asyncio_basics"


def lesson_command(name, *args):
    return [sys.executable, str(MODULES / f"{name}.py"), *args]


def test_list_prints_every_step_and_runs_none():
    process = subprocess.run(lesson_command(LESSON, "--list"), cwd=ROOT,
                             env=lesson_env(), capture_output=True, text=True, timeout=30)
    assert process.returncode == 0
    lines = process.stdout.strip().splitlines()
    assert len(lines) == 9 and lines[0].strip().startswith("1. gather")
    assert "Step 1/9" not in process.stdout  # nothing ran


def test_step_starts_at_the_given_step_and_only_runs_one(tmp_path):
    process, figures = run_lesson(LESSON, tmp_path, "--step", "8")
    assert process.returncode == 0
    assert list(figures) == ["pitfall_forgotten_await", "pitfall_gather_exceptions"]
    (tmp_path / "only").mkdir()
    process, figures = run_lesson(LESSON, tmp_path / "only", "--only", "5")
    assert list(figures) == ["semaphore_limits_concurrency"]
    assert "Step 5/9" in process.stdout and "Step 6/9" not in process.stdout


def test_a_step_out_of_range_is_a_clear_error(tmp_path):
    process, _ = run_lesson(LESSON, tmp_path, "--step", "42")
    assert process.returncode == 2
    assert "--step must be between 1 and 9" in process.stderr and "Traceback" not in process.stderr


def make(*args):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=lesson_env(),
                          capture_output=True, text=True, timeout=120)


def test_make_lesson_takes_1_or_01_and_lists_the_lessons_without_n():
    for number in ("1", "01"):
        process = make("lesson", f"N={number}", "ARGS=--list")
        assert process.returncode == 0 and re.search(r"^ 1\. gather", process.stdout, re.MULTILINE)
        assert "Warning" not in process.stderr, process.stderr
    listing = make("lesson")
    assert listing.returncode != 0
    assert "Which lesson?" in listing.stderr and "make lesson N=02" in listing.stderr
    assert "no lesson '99'" in make("lesson", "N=99").stderr.replace("There is ", "").lower()


def test_the_resume_command_a_lesson_prints_runs_from_that_step():
    process = make("lesson", "N=1", "STEP=9", "ARGS=--no-pause")
    assert process.returncode == 0, process.stdout + process.stderr
    assert "Step 9/9" in process.stdout and "Step 8/9" not in process.stdout


class Terminal:
    """A lesson in a pseudo-terminal, as a learner runs it: it pauses, and reads keys."""

    def __init__(self, command, **env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the lesson
            os.chdir(ROOT)
            os.execve(command[0], command, lesson_env(COURSE_NO_PAUSE="0", COLUMNS="100", **env))
        self.output = ""

    def _read(self) -> bool:
        """Read what is there; False once the lesson has ended (the terminal is closed)."""
        if select.select([self.fd], [], [], 0.1)[0]:
            try:
                self.output += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:
                return False
        return True

    def read_until(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            assert time.monotonic() < deadline and self._read(), \
                f"never saw {pattern!r}; last output:\n{self.output[-1500:]}"
        return self.output

    def quiet_for(self, seconds):
        """True when nothing new was printed for `seconds` (the lesson waits at a pause)."""
        before = len(self.output)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._read():
            pass
        return len(self.output) == before

    def type(self, keys):
        os.write(self.fd, keys.encode())

    def exit_code(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.quiet_for(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the lesson did not end")


def test_q_at_a_pause_quits_and_says_how_to_resume():
    lesson = Terminal(lesson_command(LESSON))
    lesson.read_until(r"Enter: next step")
    lesson.type("q\n")
    assert lesson.exit_code() == 0
    assert "Carry on later with: make lesson N=01 STEP=2" in lesson.output


def test_keys_pressed_while_a_step_runs_do_not_skip_the_next_pause():
    lesson = Terminal(lesson_command(LESSON))
    lesson.read_until(r"Step 1/9")
    lesson.type("\n\n")  # impatient: Enter twice while step 1 still runs (it takes 3 s)
    lesson.read_until(r"Enter: next step")
    assert lesson.quiet_for(1.5), "the pause after step 1 was skipped"
    assert "Step 2/9" not in lesson.output
    lesson.type("q\n")
    assert lesson.exit_code() == 0


def test_q_inside_make_course_leaves_the_whole_course():
    course = Terminal([sys.executable, "-m", "course.runner"])
    course.read_until(r"Enter: next step")
    course.type("q\n")
    assert course.exit_code() == 0
    assert "Lesson 02: concurrent" not in course.output  # the next lesson never started


def test_ctrl_c_stops_cleanly_and_stops_the_simulator():
    process = subprocess.Popen(lesson_command("02_concurrent_llm", "--no-pause"), cwd=ROOT,
                               env=lesson_env(SIM_SPEED="1"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = ""
    while "LLM:" not in seen:  # the simulator is up and step 1 is running
        line = process.stdout.readline()
        assert line, f"the lesson ended before its first LLM call:\n{seen}"
        seen += line
    port = int(re.search(r"127\.0\.0\.1:(\d+)", seen).group(1))
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    output = seen + process.communicate(timeout=30)[0]

    assert process.returncode == 130
    assert "Stopped" in output and "Traceback" not in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the simulator is still listening"
