"""`python -m course.api [--host H] [--port P]` (make api): the job API and its page.

Listens on API_HOST:API_PORT (127.0.0.1:8000 by default; --port 0 picks a free port) and prints
`job API listening on http://...` once it does. Starts Redis as the lessons do when none answers
on localhost. Jobs wait in the queue until a worker runs: make worker, in a second terminal.
The access log never shows a stream token: `?token=` is written as `?token=***`.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import socket
import sys

import uvicorn

from course.console import Stop
from course.settings import settings

TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s]*")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HideTokens(logging.Filter):
    """Uvicorn's access log line gets the path with its query: blank out any token in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        record.msg = TOKEN_IN_QUERY.sub(r"\1***", str(record.msg))
        return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course.api", description="The course's job API and its page.")
    parser.add_argument("--host", default=settings.api_host, help="address to listen on (API_HOST)")
    parser.add_argument("--port", type=int, default=settings.api_port, help="port (API_PORT); 0 picks a free one")
    return parser.parse_args(argv)


def preflight(host: str) -> None:
    """Tokens readable and Redis answering (started on localhost if need be), or exit with why."""
    from course.api import auth
    from course.jobs.redis_server import ensure_redis

    try:
        callers = auth.callers()
        ensure_redis()
    except (auth.BadTokens, Stop) as problem:
        sys.exit(f"The job API cannot start: {problem}")
    demo = " (the demo tokens: set API_TOKENS to your own before others can reach it)" if auth.USES_DEMO_TOKENS else ""
    print(f"Callers: {', '.join(callers)}{demo}.", flush=True)
    if auth.USES_DEMO_TOKENS and host not in LOOPBACK:
        print(f"Warning: listening on {host} with the demo tokens, which everyone knows. Set API_TOKENS.",
              file=sys.stderr, flush=True)


async def serve(server: uvicorn.Server, sock: socket.socket, host: str) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        where = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
        print(f"job API listening on {where}  (the page: {where}/, the docs: {where}/docs)", flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    preflight(args.host)
    from course.api.app import create_app

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        sys.exit(f"The job API cannot listen on {args.host}:{args.port}: {error.strerror}. "
                 "Set API_PORT to a free port, or stop what uses it.")
    config = uvicorn.Config(create_app(), log_level="info",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.access").addFilter(HideTokens())
    for sig in (signal.SIGINT, signal.SIGTERM):  # a quiet stop: no KeyboardInterrupt traceback
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # Windows: no uvloop
        run = asyncio.run
    run(serve(server, sock, args.host))


if __name__ == "__main__":
    main()
