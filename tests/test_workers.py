"""Finding and starting workers: never silent, every course queue read, names that never clash,
and the tasks run under `--pool threads` too."""
import os
import subprocess
import time

import pytest

from conftest import ROOT
from course.jobs import tasks, workers
from course.jobs.celery_app import app
from course.llm.simulator import launcher


def said(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def your_worker(*args: str) -> subprocess.Popen:
    """A worker as you would start it in a second terminal: `celery -A course worker ...`."""
    command = [part for part in workers.worker_command() if part not in ("-Q", workers.QUEUES)]
    process = subprocess.Popen([*command, *args], cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not workers.workers_answering(timeout=0.5):
        assert time.monotonic() < deadline and process.poll() is None, "your worker did not start"
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(20)


def test_with_no_worker_the_lesson_says_what_it_waits_for_and_starts_one(private_redis, simulator,
                                                                         monkeypatch, capsys):
    app.control.purge()
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    worker = workers.ensure_worker()
    try:
        output = said(capsys)
        assert "Looking for a worker of yours (up to 0.5 s)" in output
        assert "Starting a worker on high,default,low" in output
        assert worker.started_here and len(worker.names) == 1
        assert worker.names[0].startswith(f"lesson-{os.getpid()}")  # then -2, -3 for the next ones
    finally:
        worker.stop()


def test_a_worker_of_yours_on_high_only_gets_a_lesson_worker_for_the_other_queues(private_redis, simulator,
                                                                                 monkeypatch, capsys):
    app.control.purge()
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    yours = your_worker("-Q", "high", "-n", "learner@%h")
    try:
        lesson = workers.ensure_worker()
        try:
            output = said(capsys)
            assert "No worker of yours consumes the queue(s) default, low" in output
            assert "learner@" in output and "consumes high" in output
            lesson_node = next(name for name in lesson.names if name.startswith("lesson-"))
            assert workers.queues_consumed([lesson_node])[lesson_node] == ["default", "low"]
            assert tasks.add.delay(1, 2).get(timeout=10) == 3  # default: nobody read it before
            chat = tasks.chat_completion.delay("Say hello.")
            assert chat.get(timeout=20)["answer"] and chat.worker.startswith("learner@")
        finally:
            lesson.stop()
    finally:
        stop(yours)


def test_your_worker_and_a_lessons_worker_answer_under_different_names(private_redis, simulator, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    yours = your_worker("-Q", workers.QUEUES)  # no -n: celery@<host>, what make worker uses
    try:
        assert not workers.ensure_worker().started_here  # yours reads every queue: used as it is
        lesson = workers.start_worker()
        try:
            names = workers.workers_answering(timeout=1.0)
            assert len(names) == 2 and any(name.startswith("celery@") for name in names)
            assert any(name.startswith(f"lesson-{os.getpid()}") for name in names)
        finally:
            lesson.stop()
    finally:
        stop(yours)


LATENCY = 1.0  # seconds per LLM call, fixed


@pytest.mark.parametrize("pool", ["threads"])
def test_twenty_llm_tasks_on_ten_threads_take_about_two_latencies(private_redis, monkeypatch, pool):
    app.control.purge()
    with launcher.start(latency=LATENCY) as sim:
        monkeypatch.setenv("OPENAI_BASE_URL", sim.base_url)
        worker = workers.start_worker(extra=("--pool", pool, "--concurrency", "10"))
        try:
            tasks.chat_completion.delay("Warm up.").get(timeout=20)
            started = time.monotonic()
            results = [tasks.chat_completion.delay(f"Question {n}: say hello.") for n in range(20)]
            answers = [result.get(timeout=60) for result in results]
            took = time.monotonic() - started
        finally:
            worker.stop()
    assert all(answer["answer"] for answer in answers)
    print(f"\n20 LLM tasks of {LATENCY:g} s on --pool {pool} --concurrency 10: {took:.2f} s")
    assert took < 4 * LATENCY  # 2 latencies when the calls overlap; one after another: 20
