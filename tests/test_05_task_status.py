"""Lesson 05 runs as the README says against the tests' own Redis, starts its own worker, and its figures hold."""
import pytest

from conftest import TEST_REDIS_URL, run_lesson


@pytest.fixture(scope="module")
def lesson_05(private_redis, tmp_path_factory):
    # No worker answers on the tests' private Redis, so the lesson starts one and stops it.
    return run_lesson("05_task_status", tmp_path_factory.mktemp("l05"), REDIS_URL=TEST_REDIS_URL, SIM_SPEED="20")


def test_lesson_05_runs_to_the_end(lesson_05):
    process, figures = lesson_05
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr
    assert "Traceback" not in process.stdout + process.stderr
    assert "Started a worker for this lesson" in process.stdout
    assert len(figures) == 9


def test_every_state_is_seen_in_its_order(lesson_05):
    step = lesson_05[1]["states_seen_live"]
    assert step["worker_started_by_lesson"] is True
    assert set(step["states_seen"]) == {"PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"}
    sequences = step["sequences"]
    assert step["first_pending"] == 4  # each was sent with a countdown, so it waits PENDING first
    assert sequences["long_report"][-2:] == ["PROGRESS", "SUCCESS"]
    assert "RETRY" in sequences["flaky_llm_call"] and sequences["flaky_llm_call"][-1] == "SUCCESS"
    assert sequences["failing_task"][-1] == "FAILURE"
    assert sequences["long_report, revoked"][-2:] == ["PROGRESS", "REVOKED"]


def test_an_unknown_id_reads_pending_and_the_submit_record_tells_it_apart(lesson_05):
    step = lesson_05[1]["unknown_or_waiting"]
    assert step["unknown_state"] == step["queued_state"] == "PENDING"
    assert step["unknown_status"] == "UNKNOWN"
    assert step["queued_status"] == "PENDING"
    assert step["finished_name"] == "course.jobs.tasks.add"


def test_polling_sees_most_progress_updates(lesson_05):
    step = lesson_05[1]["progress_with_update_state"]
    assert step["final_state"] == "SUCCESS"
    assert step["progress_updates_seen"] >= step["steps"] // 2
    assert step["polls"] >= step["progress_updates_seen"]


def test_status_returns_the_id_at_once_and_ends_with_the_result(lesson_05):
    step = lesson_05[1]["submit_then_poll"]
    assert step["submit_ms"] < 500
    assert "PROGRESS" in step["states"] and step["states"][-1] == "SUCCESS"
    assert step["final"]["result"] == {"steps": 5, "seconds": 1.5}


def test_the_webhook_arrives_once_and_sooner_than_polling_notices(lesson_05):
    step = lesson_05[1]["polling_vs_webhook"]
    assert step["webhook_calls"] == 1
    assert step["webhook_body"]["state"] == "SUCCESS"
    assert step["webhook_delay_s"] < 1
    assert step["polls"] > 1


def test_pushed_events_bring_every_step_with_fewer_requests(lesson_05):
    step = lesson_05[1]["pushed_progress_events"]
    assert step["messages_received"] == step["steps"]
    assert step["polls"] > step["messages_received"]
    assert step["polls_with_news"] < step["polls"]


def test_a_failure_keeps_the_exception_and_the_traceback(lesson_05):
    step = lesson_05[1]["failure_keeps_the_traceback"]
    assert step["state"] == "FAILURE"
    assert step["exception"] == "ReportGenerationError"
    assert step["traceback_lines"] >= 3
    assert "ReportGenerationError" in step["last_line"]


def test_revoke_stops_the_report_before_its_last_step(lesson_05):
    step = lesson_05[1]["cancel_with_revoke"]
    assert step["state"] == step["state_a_moment_later"] == "REVOKED"
    assert 5 <= step["progress_reached"] < step["steps"]


def test_an_expired_result_reads_pending_again(lesson_05):
    step = lesson_05[1]["result_expiry"]
    assert step["result_expires_s"] - 60 <= step["ttl_s"] <= step["result_expires_s"]
    assert step["state_before"] == "SUCCESS"
    assert step["state_after_expiry"] == "PENDING"


def test_the_worker_the_lesson_started_is_gone(lesson_05):
    from course.jobs import redis_server, workers

    assert workers.workers_answering(timeout=1.0) == []
