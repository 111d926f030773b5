"""Lesson 09 run as a learner runs it: what it measured, step by step; and the pieces it stands
on (a worker's /metrics, the task id on its log lines, the cost of tokens) on their own."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, TEST_REDIS_URL, free_port

NAME = "09_production"


@pytest.fixture(scope="module")
def figures(lesson_figures):
    return lesson_figures(NAME)


def test_flower_pages_want_the_login_and_its_metrics_count_the_tasks(figures):
    step = figures["flower_behind_a_login"]
    assert (step["tasks_without_login"], step["tasks_with_login"]) == (401, 200)
    assert step["metrics_without_login"] == 200  # measured: Flower leaves /metrics open
    assert step["flower_counted_succeeded"] == step["summaries_sent"] == 4


def test_the_workers_metrics_count_the_batch_retries_failures_and_tokens(figures):
    step = figures["metrics_from_task_signals"]
    assert (step["succeeded"], step["retries"], step["failures"]) == (8, 1, 1)
    rows = {row["task"]: row for row in step["by_task"]}
    assert rows["summarise"]["runs"] == 8 and rows["summarise"]["mean_ms"] > 0
    assert rows["flaky_llm_call"]["runs"] == 2  # the failed attempt, then the retry
    assert rows["failing_task"]["failures"] == 1
    assert step["tokens"] > 8 * 10 and step["cost"].startswith("$0.0")


def test_queue_length_is_read_at_scrape_time_and_ends_at_zero(figures):
    step = figures["queue_length_at_scrape_time"]
    assert 0 <= step["waiting_right_after"] <= step["sent"] == 24
    assert step["waiting_when_done"] == 0


def test_grep_for_the_task_id_finds_its_whole_story_the_http_lines_too(figures):
    step = figures["one_job_through_the_log"]
    lines = [row["line"] for row in step["grep"]]
    assert "received" in lines[0] and "succeeded" in lines[-1]
    assert any("retry" in line for line in lines)
    # The HTTP client logs from the event loop's thread: the id reached it through the context.
    assert sum("HTTP Request" in line for line in lines) == 2
    assert all("<task>" in line for line in lines)
    assert step["lines_about_it"] < step["log_lines"]


def test_three_of_four_tests_pass_eagerly_and_fail_on_a_real_worker(figures):
    step = figures["what_eager_mode_hides"]
    rows = {row["test"]: row for row in step["tests"]}
    assert step["hidden"] == 3 and step["checks"] == 4
    assert rows["arguments travel as json"]["eager"] == "failed"  # Celery encodes eager arguments too
    assert rows["the result travels as json"]["why"] == "EncodeError"
    assert rows["a routed task needs a worker on its queue"]["why"] == "TimeoutError"


def test_the_tests_worth_keeping_pass_on_a_real_worker_and_the_simulator(figures):
    step = figures["tests_worth_keeping"]
    assert step["passed"] == step["count"] == 5
    retry = next(row for row in step["tests"] if "retry" in row["test"])
    assert retry["took_s"] >= 3  # it waited the countdown, as a real worker does


def test_a_warm_shutdown_finishes_the_running_tasks_and_keeps_the_rest(figures):
    step = figures["warm_shutdown_loses_nothing"]
    assert step["running_at_sigterm"] == step["finished_of_those"] == 2
    assert step["left_in_queue"] == 4
    assert step["succeeded"] == step["sent"] == 6


def test_a_task_cut_off_by_the_grace_period_waits_unacked_or_is_handed_back(figures):
    killed, quit_ = figures["grace_period_shorter_than_a_task"]["endings"]
    assert (killed["in_queue"], killed["unacknowledged"], killed["runs"]) == (0, True, 1)
    assert (quit_["in_queue"], quit_["unacknowledged"], quit_["runs"]) == (1, False, 1)
    assert quit_["runs_in_the_end"] == 2  # it ran again from the start: tasks must be idempotent


def test_max_tasks_per_child_replaces_the_pool_process_every_three_tasks(figures):
    step = figures["long_lived_workers"]
    assert step["tasks_run"] == 7 and step["processes"] == 3


def test_the_compose_file_keeps_every_rule_the_lesson_reads(figures):
    step = figures["checklist_in_the_compose_file"]
    assert step["kept"] == step["rules"] == 6


def test_rq_runs_the_same_job_with_the_same_answers(figures):
    step = figures["the_same_job_on_rq"]
    assert step["same_answers"] is True and step["texts"] == 20
    assert step["celery_per_second"] > 0 and step["rq_per_second"] > 0


def test_rq_needs_fewer_lines_of_setup_than_the_celery_app(figures):
    step = figures["rq_or_celery"]
    assert 0 < step["rq_setup_lines"] < step["celery_app_lines"]
    assert {row["need"] for row in step["what_each_has"]} >= {"retries", "scheduling", "priorities"}


# ---- the pieces, on their own --------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def test_a_worker_serves_metrics_on_loopback_and_says_where_in_redis(private_redis, simulator):
    """The worker a lesson or make worker starts: /metrics on 127.0.0.1, its URL in Redis; a
    second worker finds the port taken and takes another."""
    from course.jobs import metrics, workers

    port = free_port()
    env = {**os.environ, "REDIS_URL": TEST_REDIS_URL, "METRICS_PORT": str(port),
           "OPENAI_BASE_URL": simulator.base_url}
    started = []
    try:
        for number in (1, 2):
            command = workers.worker_command("metrics-test", f"metrics-{number}-{os.getpid()}@%h",
                                             extra=("--pool", "solo"))
            started.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        host = socket.gethostname()
        names = [f"metrics-{n}-{os.getpid()}@{host}" for n in (1, 2)]
        deadline = time.monotonic() + 40
        while len(metrics.endpoints(names)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        found = metrics.endpoints(names)
        assert len(found) == 2, found
        ports = {url.split(":")[2].split("/")[0] for url in found.values()}
        assert str(port) in ports and len(ports) == 2  # the second took a free port
        for url in found.values():
            assert url.startswith("http://127.0.0.1:")
            assert "course_queue_length{queue=\"default\"}" in scrape(url)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(20)
    assert metrics.endpoints(names) == {}  # a worker that stops takes its address away


def test_cost_follows_the_price_list_and_an_unknown_model_costs_nothing():
    from course.jobs.metrics import PRICES, cost_usd

    price_in, price_out = PRICES["gpt-4o-mini"]
    assert cost_usd("gpt-4o-mini", 1_000_000, 2_000_000) == pytest.approx(price_in + 2 * price_out)
    assert cost_usd("a-model-of-your-own", 10_000, 10_000) == 0


def test_the_task_fields_filter_names_the_task_and_leaves_other_lines_a_dash():
    import logging

    from course.jobs import logs

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    logs.TaskFields().filter(record)
    assert (record.task_name, record.task_id) == ("-", "-")
    logs.remember_the_task(task_id="abc", task=type("T", (), {"name": "course.t"})())
    try:
        logs.TaskFields().filter(record)
        assert (record.task_name, record.task_id) == ("course.t", "abc")
        line = logging.Formatter(logs.FORMAT).format(record)
        assert "course.t[abc] x: hello" in line
    finally:
        logs.forget_the_task()
    assert sys.modules["course.jobs.logs"].lines_of("a abc\nb\nc abc", "abc") == ["a abc", "c abc"]
