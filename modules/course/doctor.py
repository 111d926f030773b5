"""First aid: is every piece of the course there? Each line is ✓ or ✗ with the command that fixes it.

Run:  make doctor
It only looks: it starts nothing. It exits 1 when something the lessons cannot do without is ✗.
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from rich.console import Console
from rich.text import Text

from course.jobs import dead_letters, redis_server, workers
from course.jobs.celery_app import RESTORE_EVERY, VISIBILITY_TIMEOUT
from course.settings import settings

COURSE_TASKS = {"course.jobs.tasks.add", "course.jobs.tasks.chat_completion", "course.jobs.tasks.embed_batch"}
PENDING_FOREVER = (
    "A task that stays PENDING forever has one of two causes: no worker consumes the queue it was "
    "sent to (check the worker line above and its -Q), or the id is unknown or mistyped: Celery "
    "answers PENDING for any id it has never seen."
)
RECOVERY = (
    f"A worker killed mid-task (kill -9, the OOM killer, a crash) leaves its tasks unacknowledged: they "
    f"run again on a worker alive by then only after the visibility timeout, {VISIBILITY_TIMEOUT:g} s "
    f"(CELERY_VISIBILITY_TIMEOUT), plus up to {RESTORE_EVERY} s. Lower it for a faster recovery, but keep "
    f"it above your longest task. A worker stopped with Ctrl-C or TERM finishes its tasks first."
)
MiB = 1024 * 1024


@dataclass
class Check:
    ok: bool | None  # None: not essential, worth knowing
    name: str
    detail: str
    fix: str = ""


def check_redis() -> list[Check]:
    url = settings.redis_url
    problem = redis_server.redis_problem(url)
    if problem:
        return [Check(False, "Redis", problem, _redis_fix(url))]
    where = "started by the course" if redis_server.started_by_course(url) else "yours (or docker compose)"
    checks = [Check(True, "Redis", f"answers at {redis_server.mask(url)}, {where}")]
    client = redis_server.connect(url)
    persistent = redis_server.persistence_on(client)
    if persistent is None:
        checks.append(Check(None, "Redis persistence", "cannot tell: CONFIG is disabled on this server"))
    elif persistent:
        fsync = client.config_get("appendfsync").get("appendfsync", "everysec")
        at_risk = {"always": "no write", "everysec": "at most about the last second of writes"}.get(
            fsync, "what the operating system had not yet written")
        checks.append(Check(True, "Redis persistence", f"append-only file on (appendfsync {fsync}): "
                            f"queued tasks survive a restart; a crash loses {at_risk}"))
    else:
        checks.append(Check(False, "Redis persistence", "off: a Redis restart loses every queued task",
                            "redis-cli config set appendonly yes, then redis-cli config rewrite "
                            "(or appendonly yes in redis.conf), so it survives a restart"))
    checks.append(check_memory(redis_server.connect(url)))
    dead = dead_letters.count()
    checks.append(Check(True if not dead else None, "Dead letters", f"{dead} task(s) failed for good",
                        "make dead-letters   (list them; show, replay and delete: see its help)"))
    return checks


def check_memory(client) -> Check:
    used, limit, policy = redis_server.memory(client)
    if policy != "noeviction":
        return Check(False, "Redis memory", f"maxmemory-policy {policy}: a full Redis deletes keys, queued "
                     "tasks and results among them", "redis-cli config set maxmemory-policy noeviction, "
                     "then redis-cli config rewrite")
    if not limit:
        return Check(None, "Redis memory", f"{used / MiB:.1f} MiB used, no limit: a flood of tasks can take "
                     "all the machine's memory", f"redis-cli config set maxmemory {settings.redis_maxmemory}")
    share = used / limit
    detail = f"{used / MiB:.1f} MiB used of {limit / MiB:.0f} MiB ({share:.0%}); when full, new tasks are refused"
    if share < 0.8:
        return Check(True, "Redis memory", detail)
    return Check(None if share < 1 else False, "Redis memory", detail,
                 "free room: purge queues you do not need (celery -A course purge -Q low), delete dead letters "
                 "(make dead-letters), or raise REDIS_MAXMEMORY")


def _redis_fix(url: str) -> str:
    host = urlsplit(url).hostname
    # The name `redis` exists only inside compose's network; localhost inside a container is the container.
    if host == "redis" and not _resolves("redis"):
        return ("From your machine the compose Redis is localhost: "
                "REDIS_URL=redis://:${REDIS_PASSWORD}@localhost:6379/0")
    if host in redis_server.LOCAL_HOSTS and os.path.exists("/.dockerenv") and _resolves("redis"):
        return "Inside compose Redis is the service name: REDIS_URL=redis://:PASSWORD@redis:6379/0"
    if redis_server.is_local(url):
        return "make redis   (or: docker compose up -d redis)"
    return "fix REDIS_URL in .env, or unset it to use a Redis on localhost"


def _resolves(host: str) -> bool:
    try:
        socket.gethostbyname(host)
    except OSError:
        return False
    return True


def check_worker() -> list[Check]:
    from course.jobs.celery_app import app

    names = workers.workers_answering(timeout=1.5)
    fix = f"make worker   (that is: {workers.WORKER_COMMAND})"
    if not names:
        # Not essential: a lesson that needs a worker starts one for its own run.
        return [Check(None, "Worker", "none answers ping (lessons start one when they need it)", fix)]
    inspector = app.control.inspect(destination=names, timeout=1.5)
    queues = sorted({q["name"] for found in (inspector.active_queues() or {}).values() for q in found})
    registered = {task for found in (inspector.registered() or {}).values() for task in found}
    events = all(conf.get("worker_send_task_events") for conf in (inspector.conf() or {}).values())
    missing_queues = {"high", "default", "low"} - set(queues)
    missing_tasks = COURSE_TASKS - registered
    return [
        Check(True, "Worker", f"{len(names)} answering: {', '.join(names)}"),
        Check(not missing_queues, "Worker queues", f"consumes {', '.join(queues) or 'nothing'}",
              "" if not missing_queues else f"restart it with -Q high,default,low: {workers.WORKER_COMMAND}"),
        Check(not missing_tasks, "Course tasks", f"{len(registered)} registered"
              + (f"; missing {', '.join(sorted(missing_tasks))}" if missing_tasks else ""),
              "" if not missing_tasks else f"start the worker from the repo root: {workers.WORKER_COMMAND}"),
        Check(True, "Task events", "on (Flower can follow tasks)" if events else
              "off, the course's default: they cost a Redis write per task state; Flower turns them on "
              "in the workers it watches"),
    ]


def check_llm() -> list[Check]:
    from course import llm

    if settings.uses_simulator:
        return [Check(True, "LLM", "none configured: each lesson starts the course's simulated LLM")]
    try:
        llm.make_sync_client().models.list()
    except Exception as error:
        return [Check(False, "LLM", llm.explain(error) or str(error),
                      "fix OPENAI_API_KEY / OPENAI_BASE_URL in .env, or unset both for the simulator")]
    return [Check(True, "LLM", f"answers: {llm.describe()}")]


def check_platform() -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    checks = [Check(sys.version_info >= (3, 11), "Python", version, "install Python 3.11 or newer")]
    if sys.platform == "win32":
        checks.append(Check(None, "Windows", "Celery's default pool (prefork) does not run here; "
                            "make worker uses threads, which do", f"make worker  ({workers.WORKER_COMMAND})"))
    return checks


def main() -> int:
    console = Console(highlight=False)
    checks = [*check_platform(), *check_redis()]
    # The worker check needs Redis; without it the line above already says what to do.
    if checks[-1].ok is not False:
        checks += check_worker()
    checks += check_llm()
    for check in checks:
        mark = {True: ("✓", "green"), False: ("✗", "red"), None: ("·", "yellow")}[check.ok]
        line = Text.assemble((f"{mark[0]} ", f"bold {mark[1]}"), (f"{check.name}: ", "bold"), check.detail)
        if check.fix and check.ok is not True:
            line.append(f"\n    fix: {check.fix}", style="cyan")
        console.print(line)
    console.print(Text(f"\n{PENDING_FOREVER}\n\n{RECOVERY}", style="dim"))
    return 1 if any(check.ok is False for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
