"""bench/io_bound.py: the ceiling it measures against, the line it ends with, and no ratio when
tasks failed. Small batches here: the real figures come from `make bench`."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TEST_REDIS_URL, lesson_env


def bench(*args: str, private_redis: bool = False) -> subprocess.CompletedProcess:
    env = lesson_env()
    if private_redis:
        env.pop("REDIS_URL")  # the benchmark starts a redis-server of its own
    else:
        env["REDIS_URL"] = TEST_REDIS_URL
    return subprocess.run([sys.executable, str(ROOT / "bench" / "io_bound.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def last_line(run: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", run.stdout.strip().splitlines()[-1]))


def load_bench():
    if str(ROOT / "bench") not in sys.path:  # as when it runs as a script: bench_redis is its neighbour
        sys.path.append(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("io_bound", ROOT / "bench" / "io_bound.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ceiling_is_one_latency_per_wave_of_slots():
    ceiling_s = load_bench().ceiling_s
    assert ceiling_s(1000, 10, 0.1) == pytest.approx(10.0)
    assert ceiling_s(41, 10, 0.1) == pytest.approx(0.5)  # a last wave of one still takes a latency
    assert ceiling_s(40, 2, 1.0) == pytest.approx(20.0)


def test_threads_end_with_their_share_of_the_ceiling_on_a_redis_of_their_own():
    run = bench("--tasks", "40", "--latency", "0.1", "--runs", "2", private_redis=True)
    assert run.returncode == 0, run.stdout + run.stderr
    figures = last_line(run)
    assert re.fullmatch(r"\d\.\d{3}", figures["ceiling_ratio"])
    assert (figures["pool"], figures["slots"], figures["tasks"], figures["runs"]) == ("threads", "10", "40", "2")
    assert 0.3 < float(figures["ceiling_ratio"]) <= 1.0  # never above the ceiling; far below it would be a bug
    assert "the ceiling is 0.40 s" in run.stdout
    assert float(figures["tasks_per_s"]) > 40  # more than one wave a latency: the slots overlap


def test_the_default_prefork_pool_is_measured_against_its_own_narrower_ceiling(private_redis):
    run = bench("--pool", "prefork", "--concurrency", "2", "--tasks", "20", "--latency", "0.1", "--runs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    figures = last_line(run)
    assert (figures["pool"], figures["slots"]) == ("prefork", "2")
    assert "the ceiling is 1.00 s" in run.stdout  # ten waves of two
    assert float(figures["tasks_per_s"]) < 20  # at most two calls a latency


def test_failed_tasks_give_no_ratio_and_a_failing_exit_code(private_redis):
    run = bench("--tasks", "10", "--latency", "601", "--runs", "1")  # past the task's limit: each one refused
    assert run.returncode == 1, run.stdout + run.stderr
    assert "ceiling_ratio=" not in run.stdout
    assert run.stdout.strip().splitlines()[-1].startswith("failed=10 ")
