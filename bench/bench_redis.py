"""The Redis a benchmark runs on: REDIS_URL's when it is set, else one of its own on a free port.

Import this before anything of the course: the course reads REDIS_URL once, when it is imported.
`start(folder)` starts the private one (its data in `folder`) or checks that REDIS_URL's answers;
`stop(folder)` stops only what `start` started.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PRIVATE = "REDIS_URL" not in os.environ
if PRIVATE:
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
URL = os.environ["REDIS_URL"]


def start(folder: Path) -> str:
    from course.jobs import redis_server

    if PRIVATE:
        redis_server.start_redis(int(URL.rsplit(":", 1)[1].split("/")[0]), folder)
    else:
        redis_server.ensure_redis(URL)
    return URL


def stop(folder: Path) -> None:
    from course.jobs import redis_server

    if PRIVATE:
        redis_server.stop_redis(URL, folder)
