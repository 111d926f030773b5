"""Lesson 05 runs as the README says against the tests' own Redis, starts its own worker, and
its figures hold."""
import pytest

NAME = "05_task_status"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME, "Started a worker for this lesson")


def test_every_state_is_seen_in_its_order(steps):
    step = steps["states_seen_live"]
    seen = {row["task"]: row["states"].split(" → ") for row in step["states_seen"]}
    assert step["first_pending"] == 3  # each was sent with a countdown, so it waits PENDING first
    assert seen["long_report"][-2:] == ["PROGRESS", "SUCCESS"]
    assert "RETRY" in seen["flaky_llm_call"] and seen["flaky_llm_call"][-1] == "SUCCESS"
    assert seen["failing_task"][0] == "PENDING" and seen["failing_task"][-1] == "FAILURE"
    assert step["kinds_seen"] == len(set().union(*seen.values())) >= 5


def test_an_unknown_id_reads_pending_and_the_record_tells_it_apart(steps):
    step = steps["unknown_or_waiting"]
    assert step["unknown_state"] == step["queued_state"] == "PENDING"
    assert (step["queued_status"], step["unknown_status"]) == ("PENDING", "UNKNOWN")


def test_polling_sees_most_progress_updates(steps):
    step = steps["progress_with_update_state"]
    assert step["final_state"] == "SUCCESS"
    assert step["steps"] // 2 <= step["updates_seen"] <= step["steps"]


def test_the_status_api_answers_at_once_and_ends_with_the_result(steps):
    step = steps["submit_then_poll"]
    states = [answer["state"] for answer in step["get_jobs_id"]]
    assert "PROGRESS" in states and states[-1] == "SUCCESS" == step["final_state"]
    assert step["get_jobs_id"][-1]["result"]["steps"] == 5
    assert step["answers"] == len(states)


def test_the_webhook_arrives_once_and_sooner_than_polling_notices(steps):
    step = steps["polling_vs_webhook"]
    assert step["webhook_calls"] == 1
    assert step["_webhook_body"]["state"] == "SUCCESS"
    assert step["webhook_s"] < step["polling_every_half_a_second_s"]
    assert step["polls"] > 1


def test_forged_stale_and_replayed_webhooks_are_refused(steps):
    step = steps["forged_calls_are_refused"]
    assert [call["status"] for call in step["calls"]] == [204, 401, 401, 401, 409]
    assert (step["accepted"], step["refused"]) == (1, 4)


def test_pushed_events_bring_every_step_while_polls_repeat_themselves(steps):
    step = steps["pushed_progress_events"]
    assert step["received"] == step["steps"]
    assert step["polls"] > step["received"]
    assert step["empty_polls"] > 0


def test_a_failure_keeps_the_exception_and_the_traceback(steps):
    step = steps["failure_keeps_the_traceback"]
    assert step["state"] == "FAILURE" and step["exception"] == "ReportGenerationError"
    assert step["traceback_lines"] >= 3 and "ReportGenerationError" in step["last_line"]


def test_revoke_stops_the_report_before_its_last_step(steps):
    step = steps["cancel_with_revoke"]
    assert step["state"] == step["state_a_moment_later"] == "REVOKED"
    assert 5 <= step["progress_reached"] < step["steps"]


def test_an_expired_result_reads_pending_again(steps):
    step = steps["result_expiry"]
    assert step["result_expires_s"] - 60 <= step["ttl_s"] <= step["result_expires_s"]
    assert (step["state_before"], step["state_after_expiry"]) == ("SUCCESS", "PENDING")
    assert step["waited_s"] >= 1.5


def test_the_worker_the_lesson_started_is_gone(steps):
    from course.jobs import workers

    assert workers.workers_answering(timeout=1.0) == []
