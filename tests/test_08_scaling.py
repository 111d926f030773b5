"""Lesson 08 runs as the README says against the tests' Redis, starts every setup it compares,
and its figures hold: the default pool waits in waves, threads and one task fanning out do not,
processes cost memory, workers add up, autoscale grows, prefetch 4 strands tasks and 1 does not.

The machine is shared and noisy: the assertions compare setups by wide margins and never pin
a time."""
import os

import pytest

NAME = "08_scaling"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME)


def test_the_default_pool_runs_one_call_per_core_in_waves(steps):
    step = steps["the_default_pool_waits_in_line"]
    assert step["slots"] == os.cpu_count()
    assert step["took_s"] >= 0.95 * step["ideal_s"]  # no setup beats its waves
    assert step["ideal_s"] >= step["tasks"] / step["slots"] * step["ideal_all_at_once_s"]
    assert step["cpu_busy_pct"] < 50  # the calls wait; the CPU does not work


def test_ten_processes_are_faster_and_each_costs_memory(steps):
    default, ten = steps["the_default_pool_waits_in_line"], steps["more_processes_cost_memory"]
    assert ten["processes"] == 11  # the worker and its ten children
    assert ten["took_s"] < default["took_s"] / 2
    assert ten["each_process_mib"] > 10 and ten["memory_mib"] > 10 * ten["each_process_mib"]


def test_ten_threads_share_one_process_and_one_event_loop(steps):
    threads, ten = steps["threads_share_one_event_loop"], steps["more_processes_cost_memory"]
    assert threads["processes"] == 1 and threads["event_loops"] == 1
    assert 2 <= threads["threads"] <= 10
    assert threads["took_s"] < steps["the_default_pool_waits_in_line"]["took_s"] / 2
    assert threads["memory_mib"] < ten["memory_mib"] / 3


def test_one_task_keeps_many_calls_in_flight_and_a_failure_runs_it_again(steps):
    step = steps["one_task_fans_out"]
    assert step["calls"] == 40
    assert step["took_s"] < steps["the_default_pool_waits_in_line"]["took_s"] / 2
    assert step["attempts"] == 2
    assert step["with_a_failure_s"] > step["took_s"]


def test_three_workers_share_the_queue_and_add_their_slots(steps):
    step, default = steps["several_workers_share_a_queue"], steps["the_default_pool_waits_in_line"]
    assert step["workers"] == 3 and step["slots"] == 3 * default["slots"]
    shares = [row["tasks"] for row in step["tasks_per_worker"]]
    assert sum(shares) == 40 and min(shares) > 0
    assert step["took_s"] < default["took_s"]


def test_autoscale_grows_the_pool_under_the_backlog(steps):
    step = steps["autoscale_grows_the_pool"]
    assert step["processes_at_start"] == 2
    assert step["processes_at_the_end"] > 2


def test_prefetch_4_strands_quick_tasks_behind_the_slow_call_and_1_does_not(steps):
    step = steps["prefetch_strands_tasks_behind_a_slow_one"]
    assert step["stranded_with_4"] > 0
    assert step["stranded_with_1"] == 0
    assert step["quick_ones_with_1_s"] < step["quick_ones_with_4_s"]


def test_the_scorecard_has_every_setup_measured(steps):
    step = steps["which_setup_for_which_work"]
    assert step["measured"] == step["setups"] == len(step["scorecard"]) == 6
    for row in step["scorecard"]:
        assert row["calls_a_second"] > 0 and 0 < row["of_the_ideal_pct"] <= 105
        assert row["memory_mib"] > 10
