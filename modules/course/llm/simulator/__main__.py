"""Command line: `python -m course.llm.simulator [--port 8100] [--speed 1] ...`.

Prints one line once it is listening (the launcher reads it), then serves until
Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import signal
import socket

import uvicorn
import uvloop

from course.settings import settings

from .app import create_app
from .config import MIB, Config
from .faults import parse_window


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m course.llm.simulator", description="A simulated OpenAI-compatible LLM server.")
    p.add_argument("--host", default=settings.sim_host)
    p.add_argument("--port", type=int, default=settings.sim_port, help="0 picks a free port")
    p.add_argument("--speed", type=float, default=settings.sim_speed, help="divide every model's latency by this")
    p.add_argument("--latency", type=float, default=settings.sim_latency,
                   help="exactly this many seconds per request, for every model (-1 = model profiles)")
    p.add_argument("--rpm", type=float, default=settings.sim_rpm, help="requests per minute per model (0 = unlimited)")
    p.add_argument("--tpm", type=float, default=settings.sim_tpm, help="tokens per minute per model (0 = unlimited)")
    p.add_argument("--error-rate", type=float, default=settings.sim_error_rate, help="fraction of requests that get 500")
    p.add_argument("--outage", default=settings.sim_outage, help="START-END: 503 between these seconds after start")
    p.add_argument("--require-key", default=settings.sim_require_key, help="accept only this API key")
    p.add_argument("--admin-key", default=settings.sim_admin_key,
                   help="the key the /sim admin routes want (x-sim-admin-key); empty = open")
    p.add_argument("--max-body-mb", type=float, default=settings.sim_max_body_mb,
                   help="the largest request body accepted, in MiB (413 past it)")
    p.add_argument("--omit-retry-after", type=float, default=settings.sim_omit_retry_after,
                   help="fraction of 429 answers sent without Retry-After, 0 to 1")
    args = p.parse_args(argv)
    for name, low, high in (("speed", 1e-6, 1e12), ("error_rate", 0, 1), ("omit_retry_after", 0, 1),
                            ("max_body_mb", 1e-6, 4096), ("rpm", 0, 1e9), ("tpm", 0, 1e9)):
        value = getattr(args, name)
        if not (math.isfinite(value) and low <= value <= high):
            p.error(f"--{name.replace('_', '-')} must be a number from {low:g} to {high:g}, not {value}")
    if not (math.isfinite(args.latency) and args.latency <= 600):
        p.error(f"--latency must be -1 (model profiles) or 0 to 600 seconds, not {args.latency}")
    return args


async def serve(server: uvicorn.Server, sock: socket.socket, host: str) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        print(f"simulator listening on http://{host}:{sock.getsockname()[1]}/v1", flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = Config(speed=args.speed, latency=args.latency, rpm=args.rpm, tpm=args.tpm,
                    error_rate=args.error_rate, outage=parse_window(args.outage), require_key=args.require_key,
                    admin_key=args.admin_key, max_body=int(args.max_body_mb * MIB),
                    omit_retry_after=args.omit_retry_after)
    # We bind the socket ourselves so that --port 0 tells us which port we got.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise SystemExit(f"simulator: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    server = uvicorn.Server(uvicorn.Config(create_app(config), loop="uvloop", http="httptools",
                                           log_level="warning", access_log=False, lifespan="off",
                                           # a stop never waits long for requests still in flight
                                           # (hung or slow on purpose): they are cut after 2 s
                                           timeout_graceful_shutdown=2))
    # Uvicorn handles the signals while serving, then re-raises them once it has stopped.
    # These handlers catch that re-raise (and any signal before uvicorn starts), so a
    # stop is quiet: no KeyboardInterrupt traceback.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    uvloop.run(serve(server, sock, args.host))


if __name__ == "__main__":
    main()
