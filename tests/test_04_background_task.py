"""Lesson 04 runs as the README says, starts its own worker and beat, measures, and stops them."""
import subprocess

import pytest

from course.samples import ARTICLE, REVIEWS

NAME = "04_background_task"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME, "Started a worker for this lesson")


def process_groups() -> set[int]:
    listing = subprocess.run(["ps", "-e", "-o", "pgid="], capture_output=True, text=True, check=True)
    return {int(line) for line in listing.stdout.split()}


def test_delay_returns_before_the_worker_has_done_the_work(steps):
    step = steps["delay_returns_at_once"]
    assert step["state_right_after_delay"] == "PENDING"
    assert step["summary"].split(".")[0] in ARTICLE  # the simulator summarises from the text


def test_each_ai_task_returns_an_answer_about_its_input(steps):
    results = {row["task"]: row["result"] for row in steps["ai_tasks"]["tasks"]}
    assert results["analyse_sentiment"]["sentiment"] == "negative"  # REVIEWS[1]: late and damaged
    assert all(word in ARTICLE.lower() for word in results["extract_keywords"]["keywords"].split(", "))
    assert results["embed_batch"]["texts"] == len(REVIEWS)


def test_the_flaky_call_succeeds_on_the_third_attempt(steps):
    step = steps["retries_with_backoff"]
    assert step["attempts"] == 3 and step["retries"] == 2
    assert step["retries_seen"] <= step["retries"]
    assert step["states_seen"][-1]["state"] == "SUCCESS"


def test_the_chain_takes_its_keywords_from_the_summary(steps):
    step = steps["chain_of_dependent_tasks"]
    assert step["links"] == 3
    keywords = step["keywords"].split(", ")
    assert keywords and all(word.lower() in step["summary"].lower() for word in keywords)


def test_the_group_beats_one_by_one(steps):
    step = steps["group_runs_in_parallel"]
    assert step["tasks"] == 3 and step["pool_slots"] >= 2
    assert step["group_s"] < step["one_by_one_s"]


def test_the_chord_callback_gets_every_result_in_order(steps):
    step = steps["chord_collects_the_group"]
    assert step["results_in_callback"] == step["header_tasks"] == 3
    assert step["combined_keys"] == ["sentiment", "summary", "keywords"]


def test_beat_fires_the_heartbeat_once_per_interval(steps):
    step = steps["periodic_tasks_with_beat"]
    assert step["fired"] >= 2 and step["_beat_pid"] is not None
    assert abs(step["measured_gap_s"] - step["interval_s"]) < 1.5


def test_the_worker_and_beat_the_lesson_started_are_gone(steps):
    worker_pid = steps["delay_returns_at_once"]["_worker_pid"]
    beat_pid = steps["periodic_tasks_with_beat"]["_beat_pid"]
    assert worker_pid is not None, "the lesson should have started its own worker"
    # Each runs in its own session: no process of its group (pool, simulator) may be left.
    assert not {worker_pid, beat_pid} & process_groups()
