"""Lesson 04 runs as the README says, starts its own worker and beat, measures, and stops them."""
import subprocess

import pytest

from conftest import TEST_REDIS_URL, run_lesson


@pytest.fixture(scope="module")
def lesson_04(private_redis, tmp_path_factory):
    # The tests' private Redis and no worker running: the lesson must start (and stop) its own.
    return run_lesson("04_background_task", tmp_path_factory.mktemp("l04"),
                      REDIS_URL=TEST_REDIS_URL, SIM_SPEED="20")


def process_groups() -> set[int]:
    listing = subprocess.run(["ps", "-e", "-o", "pgid="], capture_output=True, text=True, check=True)
    return {int(line) for line in listing.stdout.split()}


def test_lesson_04_runs_to_the_end(lesson_04):
    process, figures = lesson_04
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr
    assert "Traceback" not in process.stdout + process.stderr
    assert "Started a worker for this lesson" in process.stdout
    assert len(figures) == 7


def test_delay_returns_at_once_while_the_result_takes_longer(lesson_04):
    step = lesson_04[1]["delay_returns_at_once"]
    assert step["delay_ms"] < 50
    assert step["result_s"] > step["delay_ms"] / 1000


def test_ai_tasks_all_return(lesson_04):
    step = lesson_04[1]["ai_tasks"]
    assert set(step) == {"analyse_sentiment_s", "summarise_s", "extract_keywords_s", "embed_batch_s"}


def test_flaky_call_succeeds_on_the_third_attempt_after_backing_off(lesson_04):
    step = lesson_04[1]["retries_with_backoff"]
    assert step["attempts"] == 3
    assert 0 <= step["backoff_waited_s"] <= 3.5  # jitter: 0-1 s, then 0-2 s (whole seconds)
    assert step["total_s"] >= step["backoff_waited_s"]


def test_chain_takes_keywords_from_the_summary(lesson_04):
    step = lesson_04[1]["chain_of_dependent_tasks"]
    assert step["links"] == 3
    assert step["summary"] and step["keywords"]


def test_group_is_faster_than_one_by_one(lesson_04):
    step = lesson_04[1]["group_runs_in_parallel"]
    assert step["tasks"] == 3
    assert step["group_s"] < step["one_by_one_s"]


def test_chord_callback_gets_the_three_results(lesson_04):
    step = lesson_04[1]["chord_collects_the_group"]
    assert step["header_tasks"] == 3
    assert step["results_in_callback"] == 3


def test_beat_fires_the_heartbeat_at_least_twice(lesson_04):
    step = lesson_04[1]["periodic_tasks_with_beat"]
    assert step["fired"] >= 2
    assert step["beat_pid"] is not None
    assert abs(step["measured_gap_s"] - step["interval_s"]) < 1.5


def test_worker_and_beat_started_by_the_lesson_are_gone(lesson_04):
    figures = lesson_04[1]
    worker_pid = figures["delay_returns_at_once"]["worker_pid"]
    beat_pid = figures["periodic_tasks_with_beat"]["beat_pid"]
    assert worker_pid is not None, "the lesson should have started its own worker"
    # Each runs in its own session: no process of its group (pool, simulator) may be left.
    assert not {worker_pid, beat_pid} & process_groups()
