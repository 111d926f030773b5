"""Lesson 01 runs as the README says, and what it measured shows each idea at work."""
import math

import pytest

NAME = "01_asyncio_basics"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME)


def test_gather_is_about_as_fast_as_one_call_and_keeps_the_order(steps):
    step = steps["sequential_vs_gather"]
    assert step["ideal_speedup_x"] == len(step["results"]) == 5
    assert step["speedup_x"] > 0.8 * step["ideal_speedup_x"]
    assert step["results"] == [f"call {i} done" for i in range(1, 6)]


def test_a_created_task_runs_while_the_caller_works(steps):
    step = steps["create_task_starts_now"]
    assert step["both_calls_s"] < 1.5 * step["ideal_both_calls_s"]  # two calls, one latency


def test_as_completed_yields_the_fastest_first(steps):
    step = steps["as_completed_order"]
    assert [row["result"] for row in step["arrivals"]] == ["fast done", "medium done", "slow done"]
    assert step["first_after_s"] < step["last_after_s"] / 2


def test_wait_for_gives_up_at_the_timeout_and_falls_back(steps):
    step = steps["wait_for_timeout"]
    assert step["answer"] == "fallback done"
    assert step["timeout_s"] <= step["waited_s"] < 1.5 * step["ideal_waited_s"]


def test_the_semaphore_caps_the_calls_in_flight(steps):
    step = steps["semaphore_limits_concurrency"]
    assert step["peak_in_flight"] == step["slots"]
    assert step["waves"] == math.ceil(step["calls"] / step["slots"])
    assert 0.95 * step["ideal_all_calls_s"] <= step["all_calls_s"] < 1.3 * step["ideal_all_calls_s"]


def test_a_failure_in_a_task_group_cancels_the_others_at_once(steps):
    step = steps["task_group_cancels_on_failure"]
    assert step["cancelled"] == step["calls"]
    assert step["group_ended_after_s"] < step["each_call_s"] / 4
    assert "ConnectionError" in step["error"]


def test_a_blocking_call_serialises_and_to_thread_does_not(steps):
    step = steps["pitfall_blocking_call"]
    assert step["blocking_s"] >= 0.95 * step["calls"] * step["ideal_s"]
    assert step["to_thread_s"] < 2 * step["ideal_s"]


def test_a_forgotten_await_gives_a_coroutine_and_a_warning(steps):
    step = steps["pitfall_forgotten_await"]
    assert step["got_instead_of_a_result"] == "coroutine"
    assert "was never awaited" in step["warning"]


def test_return_exceptions_keeps_the_good_results(steps):
    step = steps["pitfall_gather_exceptions"]
    assert "ValueError" in step["default_gather"]
    assert (step["succeeded"], step["failed"]) == (3, 1)
    outcomes = [row["outcome"] for row in step["with_return_exceptions"]]
    assert outcomes[2].startswith("ValueError") and outcomes[3] == "'call 3 done'"
