"""The dead letter store on a real worker: what lands there, list, inspect, replay, delete, the cap."""
import dataclasses
import logging
import subprocess
import sys
import time
import uuid

import pytest

from conftest import ROOT, lesson_env
from course.jobs import dead_letters, tasks, workers
from course.jobs.celery_app import app
from course.settings import settings

VISIBILITY_TIMEOUT = 10  # the worker's retry budget is 80% of it: 8 s of waiting between attempts
RETRY_BUDGET = 8


@pytest.fixture(scope="module")
def short_worker(private_redis, simulator):
    app.control.purge()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", simulator.base_url)
        env.setenv("CELERY_VISIBILITY_TIMEOUT", str(VISIBILITY_TIMEOUT))
        running = workers.ensure_worker()
    assert running.started_here
    yield running
    running.stop()


def fail(result, timeout=30):
    with pytest.raises(Exception):
        result.get(timeout=timeout)
    assert result.state == "FAILURE"
    time.sleep(0.2)  # the entry is written right after the FAILURE state
    return dead_letters.get(result.id)


def test_a_failed_task_lands_with_its_name_arguments_error_and_traceback(short_worker):
    entry = fail(tasks.failing_task.delay())
    assert entry["task"] == "course.jobs.tasks.failing_task" and entry["args"] == [] and entry["kwargs"] == {}
    assert entry["error"].startswith("ReportGenerationError: The report could not be generated")
    assert "raise ReportGenerationError" in entry["traceback"]
    assert entry["reason"] == "not retried" and entry["attempts"] == 1 and entry["deliveries"] == 1
    assert entry["queue"] == "default" and time.time() - entry["failed_at"] < 30


def test_bad_arguments_land_at_once_without_retries(short_worker):
    entry = fail(tasks.embed_batch.delay("not a list", batch_size=4))
    assert entry["args"] == ["not a list"] and entry["kwargs"] == {"batch_size": 4}
    assert entry["error"].startswith("BadArguments") and entry["attempts"] == 1 and entry["queue"] == "low"


def test_an_llm_task_stops_retrying_once_its_budget_is_spent(short_worker):
    started = time.monotonic()
    entry = fail(tasks.flaky_llm_call.delay(f"always-{uuid.uuid4()}", 1000), timeout=60)
    took = time.monotonic() - started
    assert entry["reason"] == "retries used up" and "InternalServerError" in entry["error"]
    # It waits 8 s in all (each wait at most 2 s), then gives up, long before max_retries=20.
    assert 4 <= entry["attempts"] < 21 and RETRY_BUDGET <= took < RETRY_BUDGET + 5


def test_replay_sends_the_same_arguments_under_a_new_id_and_then_removes_the_entry(short_worker):
    task_id = f"dead-{uuid.uuid4()}"
    dead_letters.add(task_id, tasks.add.name, [20, 22], {}, "RuntimeError: lost on purpose", queue="default")
    assert any(entry["id"] == task_id for entry in dead_letters.entries())
    replayed = dead_letters.replay(task_id)
    assert replayed.id != task_id and replayed.get(timeout=10) == 42
    assert dead_letters.get(task_id) is None


def test_an_entry_stays_when_its_replay_could_not_be_sent(private_redis, monkeypatch):
    task_id = f"dead-{uuid.uuid4()}"
    dead_letters.add(task_id, tasks.add.name, [1, 1], {}, "RuntimeError: lost on purpose")

    def broker_down(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(app, "send_task", broker_down)
    with pytest.raises(ConnectionError):
        dead_letters.replay(task_id)
    assert dead_letters.get(task_id) is not None


def test_unknown_ids_and_huge_arguments_are_refused_with_a_clear_message(private_redis):
    with pytest.raises(dead_letters.NotReplayable, match="No dead letter with id"):
        dead_letters.replay("no-such-id")
    task_id = f"dead-{uuid.uuid4()}"
    entry = dead_letters.add(task_id, tasks.summarise.name, ["x" * 200_000], {}, "RuntimeError: too big")
    assert entry["args"][0].startswith("<200002 bytes, sha256") and entry["replayable"] is False
    with pytest.raises(dead_letters.NotReplayable, match="too large to keep"):
        dead_letters.replay(task_id)
    assert dead_letters.delete(task_id) and not dead_letters.delete(task_id)


def test_the_store_keeps_the_newest_entries_and_logs_what_it_drops(private_redis, monkeypatch, caplog):
    monkeypatch.setattr(dead_letters, "settings", dataclasses.replace(settings, dead_letters_max=3))
    ids = [f"capped-{n}-{uuid.uuid4()}" for n in range(5)]
    with caplog.at_level(logging.WARNING, logger="course.dead_letters"):
        for task_id in ids:
            dead_letters.add(task_id, tasks.add.name, [1, 2], {}, "RuntimeError: x")
    assert dead_letters.count() == 3
    assert [entry["id"] for entry in dead_letters.entries()] == ids[:1:-1]  # newest first
    dropped = [record.getMessage() for record in caplog.records]
    assert len(dropped) >= 2 and all("dropped the oldest entry" in line for line in dropped)


def test_the_command_line_lists_shows_and_deletes(private_redis):
    task_id = f"dead-{uuid.uuid4()}"
    dead_letters.add(task_id, tasks.add.name, [3, 4], {}, "RuntimeError: shown on purpose")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "course.jobs.dead_letters", *args], cwd=ROOT,
                              env=lesson_env(), capture_output=True, text=True, timeout=30)

    listing = cli("list")
    assert listing.returncode == 0 and task_id in listing.stdout and "shown on purpose" in listing.stdout
    shown = cli("show", task_id)
    assert shown.returncode == 0 and '"args": [\n    3,\n    4\n  ]' in shown.stdout
    assert cli("delete", task_id).returncode == 0 and cli("show", task_id).returncode == 1
    missing = cli("replay", "no-such-id")
    assert missing.returncode == 1 and "No dead letter with id" in missing.stdout
    assert "Traceback" not in listing.stderr + shown.stderr + missing.stderr
