"""Lesson 03 runs as the README says against the tests' Redis, and its figures hold."""
import pytest

from conftest import TEST_REDIS_URL, run_lesson


@pytest.fixture(scope="module")
def lesson_03(private_redis, tmp_path_factory):
    return run_lesson("03_celery_setup", tmp_path_factory.mktemp("l03"),
                      REDIS_URL=TEST_REDIS_URL, SIM_SPEED="20", WORKER_WAIT="0.5")


def test_lesson_03_runs_to_the_end(lesson_03):
    process, figures = lesson_03
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr
    assert "Traceback" not in process.stdout + process.stderr
    assert len(figures) == 8


def test_the_four_parts_are_measured_live(lesson_03):
    parts = lesson_03[1]["the_four_parts"]
    assert parts["persistence"] is True
    assert parts["redis_ping_ms"] > 0


def test_the_redis_keeps_queued_tasks_through_restarts_and_memory_pressure(lesson_03):
    assert lesson_03[1]["redis_that_keeps_tasks"] == {"appendonly": "yes", "maxmemory_policy": "noeviction"}


def test_time_limits_stay_below_the_visibility_timeout(lesson_03):
    config = lesson_03[1]["the_configuration"]
    assert config["limits_below_visibility"] is True
    assert config["soft_time_limit_s"] < config["time_limit_s"] < config["visibility_timeout_s"]


def test_a_message_waits_in_redis_and_stays_pending_with_no_consumer(lesson_03):
    assert lesson_03[1]["a_task_is_a_message"] == {"messages_waiting": 1, "state": "PENDING"}


def test_each_task_lands_in_its_queue(lesson_03):
    routing = lesson_03[1]["routing_to_queues"]
    assert routing["queue_of_add"] == "default"
    assert routing["queue_of_chat_completion"] == "high"
    assert routing["queue_of_embed_batch"] == "low"
    assert routing["worker_started_by_lesson"] is True


def test_inspect_sees_the_worker_and_its_prefetch_of_one_per_process(lesson_03):
    figures = lesson_03[1]
    assert figures["inspecting_the_worker"]["workers"] == 1
    assert figures["inspecting_the_worker"]["tasks_run"] >= 3
    trade_off = figures["acks_late_and_prefetch"]
    assert trade_off["messages_reserved"] == trade_off["pool_processes"] >= 1


def test_a_dead_remote_redis_stops_the_lesson_with_a_short_message(tmp_path):
    process, _ = run_lesson("03_celery_setup", tmp_path, REDIS_URL="redis://:hunter2@127.0.0.2:6379/0")
    assert process.returncode == 1
    assert "cannot go on" in process.stdout and "***" in process.stdout
    assert "Traceback" not in process.stdout + process.stderr and "hunter2" not in process.stdout
