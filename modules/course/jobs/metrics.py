"""The worker's Prometheus metrics, counted from Celery's task signals, served on /metrics.

Every worker serves http://METRICS_HOST:METRICS_PORT/metrics (127.0.0.1:9808 by default; a free
port when that one is taken, said in the log) and writes its address to the Redis hash
`course:metrics` under its node name, so a lesson finds it. What it counts:

    course_tasks_total{task,state}           tasks that ended: SUCCESS, FAILURE, RETRY
    course_task_duration_seconds{task}       a histogram, from task_prerun to task_postrun
    course_task_retries_total{task}          retries asked for (task.retry, autoretry_for)
    course_task_failures_total{task,exception}
    course_llm_tokens_total{model,kind}      prompt and completion tokens, from a result's "usage"
    course_llm_cost_usd_total{model}         those tokens at the list prices in PRICES
    course_queue_length{queue}               messages waiting in each course queue, read at scrape

Prefork: a task runs in a pool process, and each process has its own memory, so a counter
increased there is invisible to the others. The worker uses prometheus_client's multiprocess
mode: at start-up (worker_init, before the pool forks) it points PROMETHEUS_MULTIPROC_DIR at a
fresh folder (.course-data/metrics/<pid>/); every process writes its values to files there,
and the main process, which serves /metrics, adds them up at each scrape. The folder goes when
the worker stops (or, after a kill, when the next worker starts).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import urllib.request

from celery import signals

from course.console import Stop
from course.jobs.celery_app import app
from course.settings import DATA, settings

log = logging.getLogger("course.metrics")

REGISTRY_KEY = "course:metrics"  # Redis hash: worker node name -> its /metrics URL
# US dollars per million tokens (input, output): list prices when this was written. A figure
# for the dashboard, not an invoice: put your provider's prices here.
PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "text-embedding-3-small": (0.02, 0.0),
}
# LLM tasks take from a tenth of a second to minutes: buckets that tell those apart.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_metrics: dict | None = None  # made at worker start-up; None in any other process
_started: dict[str, float] = {}  # task id -> when it started, in the process running it
_folder: str | None = None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """What these tokens cost at PRICES (0 for a model it does not list)."""
    price_in, price_out = PRICES.get(model, (0.0, 0.0))
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


# ---- start-up: the folder, the metrics, the endpoint (worker's main process) ----------------


@signals.worker_init.connect
def start_exporter(sender=None, **_):
    """Before the pool forks: multiprocess mode on, the metrics made, /metrics served."""
    global _metrics, _folder
    if getattr(sender, "app", None) is not app:
        return
    _folder = _fresh_folder()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _folder
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # in case prometheus_client was imported before
    _metrics = _make_metrics()
    try:
        url = _serve(app, sender.hostname)
    except Exception as error:  # the worker runs on without metrics
        log.error("No /metrics endpoint: %s", error)
        return
    log.info("Metrics for Prometheus on %s", url)


def _fresh_folder() -> str:
    """.course-data/metrics/<pid>/, empty; the folders of workers that are gone (killed, so they
    could not clean up) are removed."""
    parent = DATA / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    for folder in parent.iterdir():
        if folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    folder = parent / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return str(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_metrics() -> dict:
    from prometheus_client import Counter, Histogram

    return {
        "tasks": Counter("course_tasks_total", "Tasks that ended, by state", ["task", "state"]),
        "duration": Histogram("course_task_duration_seconds", "Time a task ran", ["task"],
                              buckets=DURATION_BUCKETS),
        "retries": Counter("course_task_retries_total", "Retries asked for", ["task"]),
        "failures": Counter("course_task_failures_total", "Tasks failed for good", ["task", "exception"]),
        "tokens": Counter("course_llm_tokens_total", "LLM tokens used", ["model", "kind"]),
        "cost": Counter("course_llm_cost_usd_total", "LLM cost at list prices, US dollars", ["model"]),
    }


def _serve(app, hostname: str) -> str:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(QueueLengths(app))
    host = settings.metrics_host
    try:
        server, _ = start_http_server(settings.metrics_port, addr=host, registry=registry)
    except OSError as error:  # taken (a second worker on this machine): any free port
        server, _ = start_http_server(0, addr=host, registry=registry)
        log.warning("Port %s is taken (%s): metrics on port %s instead; a Prometheus that scrapes "
                    "%s will not see this worker", settings.metrics_port, error.strerror,
                    server.server_port, settings.metrics_port)
    shown_host = socket.gethostname() if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{server.server_port}/metrics"
    _registry_client(app).hset(REGISTRY_KEY, hostname, url)
    return url


class QueueLengths:
    """A collector read at each scrape: how many messages wait in each course queue (LLEN)."""

    def __init__(self, app):
        self.app = app
        self.queues = [queue.name for queue in app.conf.task_queues or ()]

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("course_queue_length", "Messages waiting in a queue", labels=["queue"])
        client = _registry_client(self.app)
        for queue, length in zip(self.queues, _lengths(client, self.queues)):
            family.add_metric([queue], length)
        yield family


def _lengths(client, queues: list[str]) -> list[int]:
    pipe = client.pipeline()
    for queue in queues:
        pipe.llen(queue)
    return pipe.execute()


_clients: dict[int, object] = {}
_clients_lock = threading.Lock()


def _registry_client(app):
    """One Redis client per process (the scrape runs in the exporter's thread)."""
    import redis

    with _clients_lock:
        if os.getpid() not in _clients:
            _clients[os.getpid()] = redis.Redis.from_url(app.conf.broker_url, socket_timeout=5)
        return _clients[os.getpid()]


@signals.worker_shutdown.connect
def stop_exporter(sender=None, **_):
    """Unregister the endpoint and remove the folder (the values die with the worker)."""
    if _metrics is None or getattr(sender, "app", None) is not app:
        return
    try:
        _registry_client(app).hdel(REGISTRY_KEY, sender.hostname)
    except Exception:  # Redis gone: the entry is stale, and says so by not answering
        pass
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)


# ---- counting: these run in the process that runs the task ----------------------------------


@signals.task_prerun.connect
def task_started(task_id=None, **_):
    if _metrics is not None:
        _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def task_ended(task_id=None, task=None, state=None, **_):
    if _metrics is None or task is None:
        return
    started = _started.pop(task_id, None)
    if started is not None:
        took = time.monotonic() - started
        _metrics["duration"].labels(task.name).observe(took)
    _metrics["tasks"].labels(task.name, state or "UNKNOWN").inc()


@signals.task_retry.connect
def task_retried(sender=None, **_):
    if _metrics is not None and sender is not None:
        _metrics["retries"].labels(sender.name).inc()


@signals.task_failure.connect
def task_failed(sender=None, exception=None, **_):
    if _metrics is not None and sender is not None:
        _metrics["failures"].labels(sender.name, type(exception).__name__).inc()


@signals.task_success.connect
def count_tokens(sender=None, result=None, **_):
    """A task that returns {"usage": {"model", "prompt_tokens", "completion_tokens"}} is counted."""
    usage = result.get("usage") if isinstance(result, dict) else None
    if _metrics is None or not isinstance(usage, dict):
        return
    model = str(usage.get("model", "unknown"))
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    _metrics["tokens"].labels(model, "prompt").inc(prompt)
    _metrics["tokens"].labels(model, "completion").inc(completion)
    _metrics["cost"].labels(model).inc(cost_usd(model, prompt, completion))


# ---- reading them back, as Prometheus does --------------------------------------------------


def endpoints(names: list[str]) -> dict[str, str]:
    """{worker name: its /metrics URL} for the workers named that registered one."""
    found = _registry_client(app).hmget(REGISTRY_KEY, names) if names else []
    return {name: url.decode() for name, url in zip(names, found) if url}


def scrape(url: str, auth: tuple[str, str] | None = None) -> dict[tuple, float]:
    """GET a /metrics page and read it: {(sample name, (label, value), ...): value}."""
    import base64

    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
    except OSError as error:
        raise Stop(f"Cannot read {url}: {getattr(error, 'reason', error)}. A worker in Docker serves "
                   "its metrics inside the stack's network only (docker compose --profile monitoring "
                   "scrapes them there); for the lesson, run a worker here: make worker") from error
    return {(sample.name, *sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples: dict[tuple, float], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(value for (sample, *pairs), value in samples.items()
               if sample == name and set(labels.items()) <= set(pairs))


def increase(before: dict[tuple, float], after: dict[tuple, float]) -> dict[tuple, float]:
    """What each sample grew by between two scrapes (Prometheus's increase(), for counters)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def scrape_all(urls) -> dict[tuple, float]:
    """Scrape every worker and add their samples up: the whole fleet's view."""
    added: dict[tuple, float] = {}
    for url in urls:
        for key, value in scrape(url).items():
            added[key] = added.get(key, 0.0) + value
    return added


def by_task(samples: dict[tuple, float], names: list[str]) -> list[dict]:
    """One row per task: runs, mean duration, retries and failures, from course_* samples."""
    rows = []
    for name in names:
        runs = total(samples, "course_task_duration_seconds_count", task=name)
        rows.append({"task": name.rpartition(".")[2], "runs": runs,
                     "mean_ms": 1000 * total(samples, "course_task_duration_seconds_sum", task=name)
                     / max(1, runs),
                     "retries": total(samples, "course_task_retries_total", task=name),
                     "failures": total(samples, "course_task_failures_total", task=name)})
    return rows
