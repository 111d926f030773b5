"""Lesson 03 runs as the README says against the tests' Redis, starts its own worker, and its
figures hold."""
import pytest

from conftest import run_lesson

NAME = "03_celery_setup"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME)


def by_setting(rows):
    return {row["setting, and why"].split("\n")[0]: row for row in rows}


def test_the_four_parts_are_found_live_before_any_worker_runs(steps):
    step = steps["the_four_parts"]
    assert [row["part"] for row in step["parts"]] == ["client", "broker", "worker", "result backend"]
    assert step["workers_answering"] == 0  # the lesson starts its own worker only later
    assert step["started_by_course"] is False  # the tests' Redis, not one the course started


def test_the_redis_keeps_queued_tasks_through_restarts_and_memory_pressure(steps):
    rows = steps["redis_that_keeps_tasks"]["settings"]
    assert {row["setting"]: row["here"] for row in rows} == {"appendonly": "yes", "maxmemory-policy": "noeviction"}


def test_the_settings_tables_read_celerys_own_defaults(steps):
    rows = by_setting(steps["settings_that_lose_nothing"]["settings"])
    assert rows["task_acks_late"]["course"] is True and rows["task_acks_late"]["default"] is False
    assert rows["task_reject_on_worker_lost"]["default"] is None
    assert (rows["worker_prefetch_multiplier"]["course"], rows["worker_prefetch_multiplier"]["default"]) == (1, 4)


def test_time_limits_stay_below_the_visibility_timeout(steps):
    step = steps["time_limits_below_the_visibility_timeout"]
    assert step["soft_limit_s"] < step["hard_limit_s"] < step["visibility_timeout_s"]
    assert step["limits_below_visibility"] is True


def test_a_message_waits_in_redis_and_stays_pending_with_no_consumer(steps):
    step = steps["a_task_is_a_message"]
    assert (step["messages_waiting"], step["state"], step["task"]) == (1, "PENDING", "course.jobs.tasks.add")


def test_each_task_lands_in_its_queue(steps):
    step = steps["routing_to_queues"]
    assert {row["task"]: row["queue"] for row in step["tasks"]} == {
        "add": "default", "chat_completion": "high", "embed_batch": "low"}
    assert all(row["state"] == "SUCCESS" for row in step["tasks"])
    assert step["_worker_started_by_lesson"] is True


def test_inspect_sees_the_lessons_worker_on_all_three_queues(steps):
    step = steps["inspecting_the_worker"]
    assert step["workers"] == 1
    assert set(step["inspect"][0]["queues"].split(", ")) == {"high", "default", "low"}
    assert step["tasks_run"] >= 3  # the three of the routing step


def test_one_message_is_reserved_per_process_and_safety_costs_little(steps):
    step = steps["the_price_of_losing_nothing"]
    assert step["messages_reserved"] == step["slots"] >= 1  # prefetch 1: one message per slot
    assert step["tiny_task_ms"] < 1000 * step["llm_task_s"]


def test_a_dead_remote_redis_stops_the_lesson_with_a_short_message(tmp_path):
    process, _ = run_lesson(NAME, tmp_path, REDIS_URL="redis://:hunter2@127.0.0.2:6379/0")
    assert process.returncode == 1
    assert "cannot go on" in process.stdout and "***" in process.stdout
    assert "Traceback" not in process.stdout + process.stderr and "hunter2" not in process.stdout
