"""Lesson 09: running LLM background jobs in production

Run:  make lesson N=09      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
You learn: how to see what the workers do (Flower's metrics and the course's own, scraped as
Prometheus does), how to follow one job through a worker's log, how to test tasks (what eager
mode hides, a real worker, async LLM code with pytest-asyncio), how to stop and deploy workers
without losing a task, and when RQ, the lighter queue, is enough.

Redis comes from REDIS_URL, as in lessons 03-08. Steps that stop or kill a worker start one of
their own on a queue of their own, so your worker and your tasks are never touched. Everything
the lesson starts listens on 127.0.0.1 and stops when the lesson ends.

Recap:
- Measure from the workers: task durations, retries, failures, tokens and cost, queue length.
  Alert on the queue growing and on failures, not on a single slow task.
- Put the task's name and id on every log line; one grep then tells a job's whole story.
- Eager mode skips the broker: test what matters against a real worker.
- SIGTERM is a warm shutdown: running tasks finish, queued ones wait. A task longer than the
  grace period runs again, so make tasks idempotent.
- One beat, Flower behind a login on a private network, secrets from the environment.
- RQ is a fine small queue; Celery when you need routing, workflows, beat and the safety settings.
"""
import re
import textwrap
import time

from celery import group

from course.jobs import llm_job, metrics, production, rq_tasks, tasks
from course.jobs.celery_app import app
from course.jobs.logs import lines_of
from course.jobs.production import (cold_shutdown, held_unacked, lesson_worker,
                                    run_example_tests, running_flower, status,
                                    wait_until)
from course.runner import Stop, run, shows, timer
from course.samples import ARTICLE, REVIEWS

SUMMARISE = llm_job.summarise_task.name
CELERY_APP = "course.jobs.celery_app"  # the module that configures Celery
PREFORK = ("--pool", "prefork")  # a process per slot, whatever make worker uses


def flower_behind_a_login(worker):
    """Flower: a login on the pages, and metrics for Prometheus

    Flower shows workers and tasks in a browser, with their arguments: it belongs behind a
    login (FLOWER_BASIC_AUTH) on 127.0.0.1 or a private network. It also serves `/metrics`,
    counted from the events the workers send, for Prometheus to scrape.

    Result: /tasks without the login: {tasks_without_login}; with it: {tasks_with_login}.
    /metrics without the login: {metrics_without_login}.
    """
    with running_flower() as flower:
        results = [llm_job.summarise_task.delay(t) for t in REVIEWS[:4]]
        [result.get(timeout=60) for result in results]
        for _ in range(50):  # events reach Flower a moment after the end
            seen = metrics.scrape(f"{flower.url}/metrics", flower.login)
            done = metrics.total(seen, "flower_events_total",
                                 type="task-succeeded", task=SUMMARISE)
            if done >= len(results):
                break
            time.sleep(0.2)
        answers = {
            "tasks_without_login": status(f"{flower.url}/tasks"),
            "tasks_with_login": status(f"{flower.url}/tasks", flower.login),
            "metrics_without_login": status(f"{flower.url}/metrics")}
    return {**answers, "summaries_sent": len(results),
            "flower_counted_succeeded": done,
            "workers_online": metrics.total(seen, "flower_worker_online")}


def scrape_the_workers(worker):
    """Where each worker's /metrics is (it writes it to Redis at start)."""
    found = metrics.endpoints(worker.names)
    if not found:
        raise Stop("Your worker serves no metrics: it is older than this "
                   "lesson. Restart it (Ctrl-C, make worker), then rerun.")
    return found


@shows(scrape_the_workers)
def metrics_from_task_signals(worker):
    """The course's own metrics, from task signals

    Each worker counts what its tasks do from Celery's signals (task_prerun, task_postrun,
    task_retry, task_failure, task_success) with prometheus_client, and serves /metrics. We
    scrape before and after a batch, as Prometheus would, and show the difference.

    Result: {succeeded} summaries, {retries} retry, {failures} failure;
    {tokens} tokens, {cost} at list prices.
    """
    urls = scrape_the_workers(worker).values()
    before = metrics.scrape_all(urls)
    batch = [llm_job.summarise_task.s(text) for text in REVIEWS[:8]]
    flaky = tasks.flaky_llm_call.delay(f"lesson-09-{time.time()}", 1)
    failing = tasks.failing_task.delay()
    group(batch).apply_async().get(timeout=120)
    flaky.get(timeout=120)
    failing.get(timeout=60, propagate=False)
    grown = metrics.increase(before, metrics.scrape_all(urls))

    def seen(name, **labels):
        return metrics.total(grown, name, **labels)

    names = [SUMMARISE, flaky.name, failing.name]
    return {"by_task": metrics.by_task(grown, names),
            "succeeded": seen("course_tasks_total", task=SUMMARISE,
                              state="SUCCESS"),
            "retries": seen("course_task_retries_total"),
            "failures": seen("course_task_failures_total"),
            "tokens": seen("course_llm_tokens_total"),
            "cost": f"${seen('course_llm_cost_usd_total'):.6f}",
            "_endpoints": list(urls)}


def queue_length_at_scrape_time(worker):
    """Queue length: the number to alert on

    A worker's queue-length gauge reads LLEN of each course queue in Redis when it is scraped.
    A length that keeps growing means the workers cannot keep up: add workers, or find out what
    slowed them. We send a burst and scrape at once, then again once it is done.

    Result: {waiting_right_after} of {sent} tasks were still waiting in `default` at the
    first scrape, {waiting_when_done} once they were done.
    """
    url = next(iter(scrape_the_workers(worker).values()))
    texts = (REVIEWS * 4)[:24]
    with timer() as took:
        sent = group(llm_job.summarise_task.s(t) for t in texts)()
        first = metrics.scrape(url)
        sent.get(timeout=180)
    last = metrics.scrape(url)
    return {"sent": len(texts),
            "waiting_right_after": metrics.total(
                first, "course_queue_length", queue="default"),
            "waiting_when_done": metrics.total(
                last, "course_queue_length", queue="default"),
            "drained_in_s": took.seconds}


def one_job_through_the_log():
    """Logs: one job followed through the worker's log

    The worker puts the task's name and id on every line it logs while the task runs
    (`course/jobs/logs.py`): Celery's lines, the HTTP client's, yours. Four tasks run side by
    side; one fails once and is retried. `grep <its id>` picks its story out of the interleaved log.

    Result: {lines_about_it} of the log's {log_lines} lines are about the flaky task, from
    `received` to `succeeded`.
    """
    queue = "lesson09-logs"
    with lesson_worker(queue, *PREFORK, "--concurrency", "2") as worker:
        flaky = tasks.flaky_llm_call.apply_async(
            (f"lesson-09-log-{time.time()}", 1), queue=queue)
        others = [llm_job.summarise_task.apply_async((text,), queue=queue)
                  for text in REVIEWS[:3]]
        [result.get(timeout=120) for result in [flaky, *others]]
    log = worker.log.read_text()  # once it stopped: every line is written

    story = lines_of(log, flaky.id)
    task = f"{flaky.name}[{flaky.id}]"
    shown = [textwrap.shorten(line.replace(task, "<task>"), 130,
                              placeholder=" [...]") for line in story]
    return {"grep": [{"line": line} for line in shown],
            "lines_about_it": len(story),
            "log_lines": len(log.splitlines()), "task": task}


def what_eager_mode_hides():
    """Testing tasks: what eager mode hides

    `task_always_eager` runs a task inside the test, with no broker and no worker: fast, and
    blind to what happens between the two. Four tests, each run twice by pytest (parametrised):
    eagerly, then against a real worker (celery.contrib.pytest's, reading Redis).

    Result: {hidden} of {checks} tests passed eagerly and failed on a real worker.
    """
    runs = run_example_tests("test_what_eager_hides.py")
    checks = {}
    for test in runs:
        name, mode = re.fullmatch(r"test_(\w+)\[(\w+)\]",
                                  test["test"]).groups()
        row = checks.setdefault(name, {"test": name.replace("_", " ")})
        row[mode] = "passed" if test["passed"] else "failed"
        if mode == "worker" and not test["passed"]:  # the exception's name
            row["why"] = test["why"].partition(":")[0].rpartition(".")[2]
    rows = list(checks.values())
    hidden = [r for r in rows if r["eager"] == "passed" != r["worker"]]
    return {"tests": rows, "checks": len(rows), "hidden": len(hidden)}


def tests_worth_keeping():
    """Testing tasks: a real worker, and async LLM code

    The tests worth keeping run the task on a real worker (the fixture starts one in the test
    process), pass plain data, and wait as long as a retry takes. Async LLM code is tested
    with pytest-asyncio (`@pytest.mark.asyncio`) against the simulated LLM, over real HTTP.

    Result: {passed} of {count} passed.
    """
    runs = run_example_tests("test_with_a_real_worker.py",
                             "test_async_llm.py")
    rows = [{"test": test["test"].removeprefix("test_").replace("_", " "),
             "result": "passed" if test["passed"] else test["why"][:30],
             "took_s": test["seconds"]} for test in runs]
    return {"tests": rows, "count": len(rows),
            "passed": sum(test["passed"] for test in runs)}


def warm_shutdown_loses_nothing():
    """Shutting down: SIGTERM while LLM tasks run loses none

    SIGTERM is Celery's warm shutdown: the worker stops taking messages, lets its running tasks
    finish, and exits; messages it had not started stay in Redis. Six slow LLM tasks on a
    worker with two processes, SIGTERM once two run, then a new worker for the rest.

    Result: {running_at_sigterm} were running and finished before the worker exited, after
    {shutdown_s}; {left_in_queue} waited in Redis; {succeeded} of {sent} succeeded.
    """
    queue, prompt = "lesson09-deploy", f"Write a long report on {ARTICLE}"
    with lesson_worker(queue, *PREFORK, "--concurrency", "2") as first:
        sent = [tasks.chat_completion.apply_async(
                (prompt, "gpt-4o"), queue=queue) for _ in range(6)]
        wait_until(sent, count=2)
        running = [r for r in sent if r.state == "STARTED"]
        with timer() as shutdown:
            first.stop()  # SIGTERM, then wait for it to exit
        finished = sum(r.state == "SUCCESS" for r in running)
        waiting = production.queue_length(queue)
    with lesson_worker(queue, *PREFORK, "--concurrency", "2"):
        for result in sent:
            result.get(timeout=120)
    return {"sent": len(sent), "running_at_sigterm": len(running),
            "finished_of_those": finished, "shutdown_s": shutdown.seconds,
            "left_in_queue": waiting,
            "succeeded": sum(r.state == "SUCCESS" for r in sent)}


def grace_period_shorter_than_a_task():
    """Deploying: a grace period shorter than the task

    Docker, Kubernetes and systemd send SIGTERM, wait a grace period, then SIGKILL. A task
    longer than that is cut off. Twice, a 2-second job and half a second of grace: a kill, as
    the orchestrator does; then SIGQUIT, Celery's cold shutdown, which hands the message back.

    Result: after the kill the message waited in Redis, unacknowledged, for the visibility
    timeout ({visibility_timeout_s}); after SIGQUIT it was back at once and ran again.
    """
    queue, rows = "lesson09-grace", []
    for ending in ("SIGKILL", "SIGQUIT"):
        with lesson_worker(queue, *PREFORK, "--concurrency", "1") as worker:
            job = tasks.counted_job.apply_async((4, 0.5), queue=queue)
            wait_until([job])
            if ending == "SIGKILL":
                worker.stop(timeout=0.5)  # SIGTERM, 0.5 s, SIGKILL
            else:
                worker.process.terminate()  # SIGTERM
                time.sleep(0.5)
                cold_shutdown(worker)  # SIGQUIT: cancel, hand back
                worker.process.wait(30)
            rows.append({"after": ending,
                         "in_queue": production.queue_length(queue),
                         "unacknowledged": held_unacked(job.id),
                         "runs": tasks.runs_of(job.id)})
        if ending == "SIGKILL":
            production.forget_unacked(job.id)  # or a later run would see it
    with lesson_worker(queue, *PREFORK, "--concurrency", "1"):
        rows[1]["runs_in_the_end"] = job.get(timeout=60)["run"]
    rows[0]["runs_in_the_end"] = "after the timeout"
    return {"endings": rows, "job_s": 4 * 0.5, "grace_s": 0.5,
            "visibility_timeout_s":
                app.conf.broker_transport_options["visibility_timeout"]}


def long_lived_workers():
    """Long-lived workers: a fresh process every N tasks

    A process that runs LLM tasks for days grows (client caches, fragmentation, a leak in a
    library). `--max-tasks-per-child 3` replaces a pool process after three tasks;
    `--max-memory-per-child` (KiB) after the task that takes it past that. Seven tasks one
    after another; after each, `inspect stats` lists the pool's process ids.

    Result: {tasks_run} tasks ran in {processes} pool processes.
    """
    queue, texts, pids = "lesson09-children", REVIEWS[:7], []
    with lesson_worker(queue, *PREFORK, "--concurrency", "1",
                       "--max-tasks-per-child", "3") as worker:
        inspector = app.control.inspect(destination=worker.names, timeout=2)
        for text in texts:
            llm_job.summarise_task.apply_async((text,), queue=queue).get(60)
            for stats in (inspector.stats() or {}).values():
                pids += map(str, stats["pool"]["processes"])
    return {"tasks_run": len(texts), "processes": len(set(pids)),
            "pool_pid_after_each_task": pids}


def checklist_in_the_compose_file():
    """Deploying: the production checklist, read from the compose file

    docs/production-checklist.md lists what a deployment needs; a few of its rules can be read
    straight from docker-compose.yml. Each row is checked here, in the file as it is.

    Result: {kept} of {rules} rules kept.
    """
    stack = production.compose_file()
    services = stack["services"]
    ports = [p for s in services.values() for p in s.get("ports", [])]
    flower_env = services["flower"].get("environment", {})
    rows = [
        {"rule": "exactly one beat",
         "kept": "replicas" not in services["beat"].get("deploy", {})},
        {"rule": "Flower wants a login",
         "kept": ":?" in str(flower_env.get("FLOWER_BASIC_AUTH"))},
        {"rule": "ports on 127.0.0.1 only",
         "kept": all(p.startswith("127.0.0.1:") for p in ports)},
        {"rule": "Redis password from .env",
         "kept": "${REDIS_PASSWORD:?" in str(services["redis"])},
        {"rule": "Prometheus scrapes workers",
         "kept": "prometheus" in services},
        {"rule": "workers scale: no fixed name",
         "kept": "container_name" not in services["worker"]},
    ]
    return {"rules_checked": rows, "rules": len(rows),
            "kept": sum(row["kept"] for row in rows)}


def the_same_job_on_rq():
    """RQ: the same LLM job, the same Redis, a lighter queue

    RQ (Redis Queue) runs any importable function: no app, no configuration. The same
    `summarise` function goes to Celery (registered as a task) and to RQ (enqueued as it is):
    two Celery processes against two RQ workers, on the same texts.

    Result: Celery {celery_per_second} tasks/s, RQ {rq_per_second} tasks/s on the same
    {texts} texts; the same summaries: {same_answers}.
    """
    texts = [f"{text} (review {n})" for n, text in enumerate(REVIEWS * 2)]
    queue = "lesson09-celery"
    with lesson_worker(queue, *PREFORK, "--concurrency", "2"):
        with timer() as on_celery:
            sent = group(llm_job.summarise_task.s(t).set(queue=queue)
                         for t in texts)()
            celery_out = sent.get(timeout=300)
    with rq_tasks.rq_workers(2):
        with timer() as on_rq:
            jobs = [rq_tasks.queue().enqueue(llm_job.summarise, t)
                    for t in texts]
            rq_out = [job.latest_result(timeout=120).return_value
                      for job in jobs]
    return {"texts": len(texts), "celery_s": on_celery.seconds,
            "rq_s": on_rq.seconds,
            "celery_per_second": len(texts) / on_celery.seconds,
            "rq_per_second": len(texts) / on_rq.seconds,
            "same_answers": [c["summary"] for c in celery_out]
            == [r["summary"] for r in rq_out]}


def rq_or_celery():
    """RQ or Celery: what each has

    RQ forks a fresh process per job (a clean slate, and its cost) and keeps its state in
    plain Redis keys. Celery brings routing, workflows, a scheduler, signals and the settings
    that lose nothing (lesson 03). The lines: the course's Celery app against RQ's setup here.

    Result: the course's Celery app module is {celery_app_lines} lines of setup; RQ's
    `queue()` is {rq_setup_lines}.
    """
    rows = [
        {"need": "retries", "celery": "retry, autoretry_for, backoff",
         "rq": "Retry(max, interval=[...])"},
        {"need": "scheduling", "celery": "countdown, eta, beat",
         "rq": "enqueue_in/at, rq cron"},
        {"need": "result expiry", "celery": "result_expires",
         "rq": "result_ttl, failure_ttl"},
        {"need": "priorities", "celery": "queues + routes",
         "rq": "queues in order, at_front"},
        {"need": "chains, groups", "celery": "chain, group, chord",
         "rq": "depends_on, Group"},
        {"need": "monitoring", "celery": "Flower, events, signals",
         "rq": "rq info, rq-dashboard"},
    ]
    return {"what_each_has": rows,
            "celery_app_lines": production.code_lines(CELERY_APP),
            "rq_setup_lines": production.code_lines(rq_tasks.queue)}


STEPS = [
    flower_behind_a_login,
    metrics_from_task_signals,
    queue_length_at_scrape_time,
    one_job_through_the_log,
    what_eager_mode_hides,
    tests_worth_keeping,
    warm_shutdown_loses_nothing,
    grace_period_shorter_than_a_task,
    long_lived_workers,
    checklist_in_the_compose_file,
    the_same_job_on_rq,
    rq_or_celery,
]

if __name__ == "__main__":
    run(STEPS)
