"""The course's tasks on a real worker, against the tests' simulator and Redis."""
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from celery import chord

from course.jobs import redis_server, tasks
from course.jobs.celery_app import LONGEST_COUNTDOWN
from course.jobs.deliveries import DelayTooLong


def test_add_runs_on_the_worker(worker):
    assert tasks.add.delay(2, 3).get(timeout=10) == 5


def test_chat_completion_reaches_the_simulator_from_the_worker(worker):
    result = tasks.chat_completion.delay("Say hello.")
    answer = result.get(timeout=20)
    assert answer["answer"] and result.queue == "high"


def test_embed_batch_reports_progress_per_batch(worker):
    result = tasks.embed_batch.delay([f"text number {n}" for n in range(40)], batch_size=2)
    seen = set()
    while not result.ready():
        if result.state == "PROGRESS":
            seen.add(result.info["current"])
        time.sleep(0.005)
    assert result.get() == {"texts": 40, "dimensions": 1536, "batches": 20}
    assert seen and seen <= set(range(2, 41, 2))
    assert result.queue == "low"


def test_flaky_call_succeeds_on_the_third_attempt_after_two_500s(worker):
    result = tasks.flaky_llm_call.delay(f"flaky-{uuid.uuid4()}", 2)
    assert result.get(timeout=30)["attempts"] == 3


def test_a_malformed_call_fails_at_once_without_retries(worker):
    result = tasks.embed_batch.delay("not a list")
    with pytest.raises(tasks.BadArguments, match="non-empty list of strings"):
        result.get(timeout=10)
    assert result.state == "FAILURE" and result.retries == 0


def test_chord_callback_gets_the_list_of_results(worker):
    text = "The new release is fast and I love it."
    header = [tasks.analyse_sentiment.s(text), tasks.summarise.s(text), tasks.extract_keywords.s(text)]
    combined = chord(header)(tasks.combine_analysis.s()).get(timeout=30)
    assert combined["parts"] == 3
    assert {"sentiment", "summary", "keywords"} <= set(combined)


def test_a_failing_task_keeps_its_traceback(worker):
    result = tasks.failing_task.delay()
    with pytest.raises(Exception, match="raised on purpose"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert "ReportGenerationError" in result.traceback


def test_a_long_report_can_be_revoked_mid_way(worker):
    result = tasks.long_report.delay(steps=50, step_seconds=0.1)
    deadline = time.monotonic() + 10
    while result.state != "PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert result.state == "PROGRESS"
    result.revoke(terminate=True)
    while result.state == "PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.state == "REVOKED"


def test_heartbeat_counts_once_per_task_id_even_if_it_runs_twice(private_redis):
    task_id = f"beat-{uuid.uuid4()}"
    first = tasks.heartbeat.apply(task_id=task_id).get()
    again = tasks.heartbeat.apply(task_id=task_id).get()
    assert again == first
    assert tasks.heartbeat.apply().get() == first + 1


def test_a_countdown_longer_than_a_task_can_wait_safely_is_refused(worker):
    with pytest.raises(DelayTooLong, match="would run twice") as refused:
        tasks.add.apply_async((1, 2), countdown=LONGEST_COUNTDOWN + 1)
    assert "beat" in str(refused.value) and f"up to {LONGEST_COUNTDOWN:g} s" in str(refused.value)
    with pytest.raises(DelayTooLong):
        tasks.add.apply_async((1, 2), eta=datetime.now(timezone.utc) + timedelta(minutes=10))
    with pytest.raises(DelayTooLong):
        tasks.add.s(1, 2).apply_async(countdown=3600)  # a signature goes the same way
    sent = time.monotonic()
    assert tasks.add.apply_async((1, 2), countdown=1).get(timeout=10) == 3
    assert time.monotonic() - sent >= 1


def test_a_result_keeps_small_arguments_and_only_a_digest_of_large_ones(worker):
    small = tasks.add.delay(2, 3)
    assert small.get(timeout=10) == 5 and small.args == [2, 3] and small.name == "course.jobs.tasks.add"
    texts = [f"document {n} about invoices and refunds " * 60 for n in range(60)]  # 150 KB of arguments
    large = tasks.embed_batch.delay(texts, batch_size=6)
    assert large.get(timeout=60)["texts"] == 60
    assert large.queue == "low" and large.worker and large.kwargs == {"batch_size": 6}
    assert large.args[0].startswith("<1") and "bytes, sha256" in large.args[0]
    assert redis_server.connect().memory_usage(f"celery-task-meta-{large.id}") < 4096


def test_a_late_state_write_never_hides_a_success(private_redis):
    from celery.result import AsyncResult

    task_id = f"late-{uuid.uuid4()}"
    tasks.app.backend.store_result(task_id, 42, "SUCCESS")
    tasks.app.backend.store_result(task_id, {"pid": 1}, "STARTED")  # a second copy starting late
    tasks.app.backend.store_result(task_id, RuntimeError("late"), "FAILURE")
    assert AsyncResult(task_id, app=tasks.app).state == "SUCCESS"
    assert AsyncResult(task_id, app=tasks.app).result == 42
