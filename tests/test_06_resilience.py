"""Lesson 06 runs as the README says against the tests' own Redis and simulator, meets the faults
it injects (outages, a fast stream, a poison task, a killed worker), and its figures hold."""
import pytest

NAME = "06_resilience"


@pytest.fixture(scope="module")
def steps(lesson_run, lesson_figures):
    figures = lesson_figures(NAME)
    process, _ = lesson_run(NAME)
    assert "No outage injected" not in process.stdout  # the simulator took every outage
    return figures


def test_retries_without_jitter_come_back_together_and_jitter_spreads_them(steps):
    step = steps["retries_with_and_without_jitter"]
    busiest = step["busiest_100ms"]
    assert busiest["no_jitter"] >= 40  # nearly all fifty callers retry within 100 ms
    assert busiest["full_jitter"] <= 0.7 * busiest["no_jitter"]
    rows = step["requests_per_half_second"]
    counts = {name: [int(row[name].split()[0]) for row in rows] for name in ("no_jitter", "full_jitter")}
    assert counts["no_jitter"][0] >= 50 and counts["full_jitter"][0] >= 50  # every first call, at once
    assert all(seconds > 1.5 for seconds in step["all_answered"].values())  # the outage was real


def test_tenacity_rides_out_the_same_outage(steps):
    step = steps["retries_from_tenacity"]
    assert step["answered"] == step["callers"] == 50
    assert step["attempts"] > 2 * step["callers"]  # every caller retried
    assert step["with_tenacity_lines"] < step["hand_written_lines"]


def test_without_a_breaker_users_wait_the_whole_deadline_and_the_dead_model_is_hammered(steps):
    step = steps["without_a_breaker"]
    assert step["fallbacks"] >= 3
    assert step["deadline_s"] * 0.95 <= step["fallback_wait_s"] <= step["deadline_s"] + 0.3
    assert step["requests_to_the_model"] > step["requests"]


def test_the_breaker_goes_closed_open_half_open_closed(steps):
    step = steps["circuit_breaker_states"]
    states = [change.split()[0] for change in step["timeline"].split(" → ")]
    assert states[0] == "closed" and states[1] == "open" and states[-1] == "closed"
    assert states[-2] == "half-open" and step["_opened"] >= 1
    # Out of open only through half-open, one probe at a time.
    assert all(after == "half-open" for before, after in zip(states, states[1:]) if before == "open")


def test_an_open_breaker_fails_fast_and_spares_the_model(steps):
    step = steps["open_breaker_fails_fast"]
    assert step["failed_fast"] >= 3
    assert step["fail_fast_us"] < 10_000  # under 10 ms, against a deadline of a second
    assert step["requests_to_the_model"] + step["failed_fast"] == step["requests"]
    assert step["requests_to_the_model"] < steps["without_a_breaker"]["requests_to_the_model"]
    assert step["answered_by_the_model"] >= 5  # before and after the outage


def test_purgatory_opens_and_closes_on_the_same_outage(steps):
    step = steps["breaker_from_purgatory"]
    states = step["states"].split(" → ")
    assert states[0] == "closed" and "opened" in states and states[-1] == "closed"
    assert step["failed_fast"] >= 3 and step["lines_replaced"] > 15


def test_a_bounded_queue_keeps_the_queue_and_memory_small(steps):
    step = steps["backpressure_with_a_bounded_queue"]
    unbounded, bounded = step["queues"]
    assert bounded["largest_queue"] == step["maxsize"] == 20
    assert unbounded["largest_queue"] > 10 * bounded["largest_queue"]
    assert unbounded["peak_memory_mib"] > 2 * bounded["peak_memory_mib"]
    assert bounded["took_s"] < 2 * unbounded["took_s"]  # bounding costs no real time


def test_aiolimiter_keeps_every_call_under_the_limit(steps):
    step = steps["rate_limit_from_aiolimiter"]
    assert step["answered"] == step["calls"] and step["rate_limited"] == 0
    assert step["answered_per_minute"] <= step["limit_rpm"] * 1.05
    assert step["lines_replaced"] > 5


def test_the_urgent_task_on_high_waits_far_less_than_behind_the_backlog(steps):
    step = steps["urgent_task_jumps_the_backlog"]
    assert step["backlog"] == 8 * step["worker_slots"]
    assert step["on_high_s"] * 3 < step["behind_the_backlog_s"]


def test_a_task_that_fails_for_good_is_kept_with_what_it_needs(steps):
    step = steps["failed_for_good_lands_in_dead_letters"]
    entry = {row["field"]: row["value"] for row in step["entry"]}
    assert entry["task"] == "course.jobs.tasks.summarise_document"
    assert entry["reason"] == "retries used up" and entry["attempts"] == 3
    assert entry["error"].startswith("DocumentMissing") and entry["args"][0].startswith("lesson06-")
    assert step["listed"] and "DocumentMissing" in step["traceback_ends"]


def test_the_replay_succeeds_once_fixed_and_the_entry_is_gone(steps):
    step = steps["fix_then_replay"]
    assert step["state"] == "SUCCESS" and step["summary_words"] > 3
    assert step["new_id"] and step["entry_still_there"] is False


def test_the_poison_task_runs_max_deliveries_times_then_stops(steps):
    step = steps["poison_task_is_stopped"]
    assert step["runs"] == step["max_deliveries"] == 3
    assert step["state"] == "FAILURE" and step["reason"] == "too many deliveries"
    assert step["worker_still_serves"]


def test_a_message_delivered_twice_credits_once_when_keyed_by_task_id(steps):
    step = steps["delivered_twice_applied_once"]
    assert step["plain_cents"] == 500 * step["deliveries"] == 1000
    assert step["keyed_cents"] == 500


def test_celery_autoretry_retries_the_failed_calls(steps):
    step = steps["retries_from_celery"]
    assert step["attempts"] == 3  # two failures on purpose, then the answer
    assert step["call_llm_lines"] > 8


def test_a_killed_worker_loses_nothing_and_its_tasks_come_back_after_the_visibility_timeout(steps):
    step = steps["killed_worker_loses_nothing"]
    assert step["finished"] == step["sent"] and step["lost"] == 0 and step["done_twice"] == 0
    assert step["running_at_the_kill"] >= 1 and step["ran_again"] >= 1
    assert step["visibility_timeout_s"] <= step["recovery_s"] < step["visibility_timeout_s"] + 30
