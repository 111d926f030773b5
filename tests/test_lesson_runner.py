"""The step runner: --list, --step, and a clean stop on Ctrl-C that leaves nothing running."""
import re
import signal
import socket
import subprocess
import sys
import time

from conftest import MODULES, ROOT, lesson_env, run_lesson


def lesson_command(name, *args):
    return [sys.executable, str(MODULES / f"{name}.py"), *args]


def test_list_prints_every_step_and_runs_none():
    process = subprocess.run(lesson_command("01_asyncio_basics", "--list"), cwd=ROOT,
                             env=lesson_env(), capture_output=True, text=True, timeout=30)
    assert process.returncode == 0
    lines = process.stdout.strip().splitlines()
    assert len(lines) == 9
    assert lines[0].strip().startswith("1. gather")
    assert "Step 1/9" not in process.stdout  # nothing ran


def test_step_starts_at_the_given_step(tmp_path):
    process, figures = run_lesson("01_asyncio_basics", tmp_path, "--step", "8")
    assert process.returncode == 0
    assert list(figures) == ["pitfall_forgotten_await", "pitfall_gather_exceptions"]
    assert "Step 8/9" in process.stdout and "Step 7/9" not in process.stdout


def test_step_out_of_range_is_a_clear_error(tmp_path):
    process, _ = run_lesson("01_asyncio_basics", tmp_path, "--step", "42")
    assert process.returncode == 2
    assert "--step must be between 1 and 9" in process.stderr
    assert "Traceback" not in process.stderr


def test_ctrl_c_stops_cleanly_and_stops_the_simulator():
    process = subprocess.Popen(lesson_command("02_concurrent_llm", "--no-pause"), cwd=ROOT,
                               env=lesson_env(SIM_SPEED="1"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = ""
    while "LLM:" not in seen:  # the simulator is up and step 1 is running
        seen += process.stdout.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", seen).group(1))
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    output = seen + process.communicate(timeout=30)[0]

    assert process.returncode == 130
    assert "Stopped" in output and "Traceback" not in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the simulator is still listening"
