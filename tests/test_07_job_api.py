"""Lesson 07 runs as the README says: it starts its own job API, Redis and worker, calls the API
over HTTP step by step, and what it shows is what the API answered and what it measured."""
import pytest

NAME = "07_job_api"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME, "Started the job API for this lesson at http://127.0.0.1:")


def statuses(step: dict) -> list[int]:
    return [int(row["answer"].split()[0]) for row in step["requests"]]


def test_the_202_comes_back_before_the_job_is_done_and_polling_follows_it_to_the_end(steps):
    step = steps["submit_then_poll"]
    assert step["requests"][0]["answer"].startswith("202 queued 0/6 · Location: /jobs/")
    assert step["answer_ms"] / 1000 < step["job_s"]
    assert step["status"] == "succeeded" and step["gets"] == len(step["requests"]) - 1
    assert all("Retry-After: 1" in row["answer"] for row in step["requests"][1:-1])
    assert "Retry-After" not in step["requests"][-1]["answer"]


def test_the_stream_sends_each_step_numbered_without_a_gap_then_done(steps):
    step = steps["follow_the_event_stream"]
    ids = [event["id"] for event in step["events"]]
    assert ids == list(range(ids[0], ids[0] + len(ids))) and step["received"] == len(ids)
    assert step["last_event"] == "done" and step["events"][-1]["status"] == "succeeded"
    assert {1, 2, 3, 4, 5, 6} <= {event["texts_done"] for event in step["events"]}


def test_a_reconnection_with_last_event_id_misses_and_repeats_nothing(steps):
    step = steps["reconnect_with_last_event_id"]
    assert step["before"] == 3 and step["after"] >= 1
    assert step["missing"] == 0 and step["twice"] == 0
    assert step["ids_after_it"][0] == step["ids_before_the_drop"][-1] + 1


def test_the_page_is_served_with_its_address_and_the_token_to_paste(steps):
    step = steps["the_page"]
    assert step["open_in_your_browser"].startswith("http://127.0.0.1:")
    assert step["paste_this_token"].startswith("alice-demo-token")
    assert step["no_inline_scripts"] is True and statuses(step) == [200]


def test_each_caller_lists_only_its_own_jobs_newest_first(steps):
    step = steps["list_your_jobs"]
    assert step["requests"][0]["answer"] == "200 2 jobs, and a next page"
    assert step["kinds_newest_first"] == ["sentiment", "keywords"]  # steps 3 and 2, newest first
    assert step["bob_jobs"] == 1


def test_a_canceled_job_stops_where_it_was_and_cannot_be_canceled_twice(steps):
    step = steps["cancel_a_running_job"]
    assert statuses(step) == [202, 200, 409]
    assert 2 <= step["progress_at_cancel"] == step["progress_a_second_later"] < step["texts"]


def test_another_callers_job_is_404_and_a_missing_or_wrong_token_401(steps):
    step = steps["another_callers_job_is_404"]
    assert statuses(step) == [404, 404, 404, 401, 401, 200]
    assert step["bob_get"] == step["bob_delete"] == 404 and step["alice_sees"] == "succeeded"


def test_bad_input_is_refused_with_the_limit_in_the_message(steps):
    step = steps["limits_say_what_they_are"]
    assert statuses(step) == [422, 422, 422, 422, 400] and step["refused"] == 5
    answers = [row["answer"] for row in step["requests"]]
    assert "at most 20 texts" in answers[0] and "limit is 4,000" in answers[1]
    assert "not valid JSON" in answers[4]


def test_a_burst_beyond_a_callers_share_is_refused_and_every_accepted_job_ends(steps):
    step = steps["a_burst_of_submissions"]
    assert step["accepted"] + step["refused"] == 15
    assert step["accepted"] >= 10 and step["refused"] >= 1  # API_MAX_ACTIVE 10: the rest get 429
    assert step["finished"] == step["accepted"]
    assert 0 < step["p50_ms"] <= step["slowest_ms"]


def test_background_tasks_die_with_the_api_and_celery_jobs_do_not(steps):
    step = steps["background_tasks_vs_celery"]
    assert step["runs"][0] == {"api": "left running", "jobs_finished": 3, "audit_records": 3}
    assert step["runs"][1] == {"api": "killed, restarted", "jobs_finished": 3, "audit_records": 0}
