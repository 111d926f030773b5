"""The benchmarks report what they measured and never a figure their failures would distort."""
import importlib.util
import re
import subprocess
import sys

import pytest

from conftest import ROOT, lesson_env


def bench(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], cwd=ROOT, env=lesson_env(),
                          capture_output=True, text=True, timeout=180)


def figures(output: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", output))


def test_a_fan_out_with_failed_calls_reports_them_and_no_efficiency():
    run = bench("fanout.py", "--calls", "40", "--concurrency", "10", "--latency", "0.05", "--error-rate", "0.5")
    assert run.returncode == 1, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"errors=\d+", last)
    assert "efficiency=" not in run.stdout
    seen = figures(run.stdout)
    assert int(seen["errors"]) > 0 and int(seen["answered"]) + int(seen["errors"]) == 40
    assert "InternalServerError" in seen["error_kinds"]


def test_a_fan_out_without_failures_ends_with_its_efficiency():
    run = bench("fanout.py", "--calls", "20", "--concurrency", "10", "--latency", "0.05")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.fullmatch(r"efficiency=\d+\.\d{3}", run.stdout.strip().splitlines()[-1])
    assert figures(run.stdout)["answered"] == "20"


def load_rate_limited():
    spec = importlib.util.spec_from_file_location("rate_limited", ROOT / "bench" / "rate_limited.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sustained_rate_is_answered_calls_per_minute_of_wall_time():
    assert load_rate_limited().sustained_rpm(answered=30, seconds=6.0) == pytest.approx(300)


def test_the_rate_limited_benchmark_prints_the_rate_it_defines():
    run = bench("rate_limited.py", "--calls", "20", "--rpm", "1200")
    assert run.returncode == 0, run.stdout + run.stderr
    seen = figures(run.stdout)
    answered = int(seen["calls"]) - int(seen["lost"])
    assert float(seen["sustained_rpm"]) == pytest.approx(answered / float(seen["time_s"]) * 60, rel=0.01)
    assert float(seen["limit_utilisation"]) == pytest.approx(float(seen["sustained_rpm"]) / 1200, abs=0.002)
