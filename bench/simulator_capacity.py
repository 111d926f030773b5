"""How many chat completions per second can the simulator answer?

    python bench/simulator_capacity.py [--seconds 10] [--connections 50] [--processes 1]
                                       [--generator auto|python|wrk] [--pin auto|yes|no]

Starts the simulator with no latency in its own process and loads it with small
keep-alive POSTs like the SDK's. The load comes from `wrk` when it is installed
(`--generator auto`), else from the generator in this file: raw asyncio sockets
(uvloop when present), one connection per in-flight request, in `--processes` processes.
Only 2xx answers count.

Client and server share this machine's cores. With `--pin` (auto: when there are at
least 2 cores) the server gets core 0 and the load generator the others, so they do
not take turns on one core; the figure is still a lower bound of what the server does
alone. It also reports requests per second of the server's own CPU time, which moves
less when other work shares the machine. The last line is
`requests_per_s=<n> generator=<name> non_2xx=<n> ... requests_per_server_cpu_s=<n>`.
The simulator must never be what slows a lesson down; the target is at least 3000/s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from course.llm.simulator.launcher import start

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]})

# wrk sends this request on every connection: a small POST like the SDK's.
LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer anything"
"""


# --- the load generator of our own ------------------------------------------------------------


def raw_request(host: str, port: int) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nAuthorization: Bearer anything\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n{BODY}").encode()


class Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, read the whole answer, send the next."""

    def __init__(self, request: bytes, deadline: float, counts: dict, done: asyncio.Future) -> None:
        self.request, self.deadline, self.counts, self.done = request, deadline, counts, done
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:  # a streamed answer: not what this benchmark sends
                self.counts["errors"] += 1
                self.transport.close()
                return
            total = end + 4 + int(length.group(1))
            if len(self.buffer) < total:
                return
            status = int(head[9:12])
            self.counts["ok" if 200 <= status < 300 else "non_2xx"] += 1
            self.buffer = self.buffer[total:]
            if time.monotonic() >= self.deadline:
                self.transport.close()
                return
            self.transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def load(host: str, port: int, connections: int, seconds: float, counts: dict) -> None:
    loop = asyncio.get_running_loop()
    request = raw_request(host, port)
    deadline = time.monotonic() + seconds
    finished = []
    for _ in range(connections):
        done = loop.create_future()
        try:
            await loop.create_connection(lambda d=done: Connection(request, deadline, counts, d), host, port)
        except OSError:
            counts["errors"] += 1
            continue
        finished.append(done)
    await asyncio.wait_for(asyncio.gather(*finished), seconds + 30)


def generator_process(host, port, connections, seconds, cpus, results) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    counts = {"ok": 0, "non_2xx": 0, "errors": 0}
    began = time.monotonic()
    try:
        import uvloop
        uvloop.run(load(host, port, connections, seconds, counts))
    except ImportError:
        asyncio.run(load(host, port, connections, seconds, counts))
    results.put({**counts, "elapsed": time.monotonic() - began})


def run_python(url: str, connections: int, seconds: float, processes: int, cpus: set[int] | None) -> dict:
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    results = multiprocessing.get_context("spawn").Queue()
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    workers = [multiprocessing.get_context("spawn").Process(
        target=generator_process, args=(host, int(port), share, seconds, cpus, results)) for share in shares if share]
    for w in workers:
        w.start()
    counts = [results.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join()
    total = {k: sum(c[k] for c in counts) for k in ("ok", "non_2xx", "errors")}
    # Each process times its own run; the longest one is the run (its rate errs low, never high).
    return {**total, "requests_per_s": total["ok"] / max(c["elapsed"] for c in counts)}


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- wrk, when it is installed -------------------------------------------------------------


def run_wrk(url: str, connections: int, seconds: float, threads: int, cpus: set[int] | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA % BODY)
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                   "-s", str(script), f"{url}/chat/completions"]
        output = subprocess.run(command, capture_output=True, text=True, check=True,
                                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None).stdout
    total, amount, unit = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output).groups()
    duration = float(amount) * {"ms": 0.001, "s": 1, "m": 60}.get(unit, 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(r"Socket errors:(.*)", output)
    errors = sum(map(int, re.findall(r"\d+", socket_errors.group(1)))) if socket_errors else 0
    ok = int(total) - non_2xx
    return {"ok": ok, "non_2xx": non_2xx, "errors": errors, "requests_per_s": ok / duration}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="load generator processes (or wrk threads)")
    p.add_argument("--generator", choices=["auto", "python", "wrk"], default="auto")
    p.add_argument("--pin", choices=["auto", "yes", "no"], default="auto",
                   help="server on core 0, load generator on the other cores")
    args = p.parse_args()

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: use --generator python (or sudo apt-get install wrk)")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = args.pin == "yes" or (args.pin == "auto" and len(cores) >= 2)
    if pin and len(cores) < 2:
        raise SystemExit("--pin yes needs at least 2 cores")

    with start(latency=0, speed=1e9) as sim:
        client_cpus = None
        if pin:
            os.sched_setaffinity(sim.pid, {cores[0]})
            client_cpus = set(cores[1:])
        run = run_wrk if generator == "wrk" else run_python
        cpu_before = cpu_seconds(sim.pid)
        figures = run(sim.base_url, args.connections, args.seconds, args.processes, client_cpus)
        cpu_after = cpu_seconds(sim.pid)
    # Requests per second of the server's own CPU time: steadier than requests/s on a busy machine.
    per_cpu = (f" requests_per_server_cpu_s={figures['ok'] / (cpu_after - cpu_before):.0f}"
               if cpu_before is not None and cpu_after > cpu_before else "")

    where = (f"server on cpu {cores[0]}, load generator on cpus {','.join(map(str, cores[1:]))}" if pin
             else "server and load generator share all cores")
    print(f"{args.connections} keep-alive connections for {args.seconds:g}s; {where} "
          f"(one machine: the figure is a lower bound)")
    print(f"requests_per_s={figures['requests_per_s']:.0f} generator={generator} non_2xx={figures['non_2xx']} "
          f"ok={figures['ok']} socket_errors={figures['errors']} connections={args.connections} "
          f"processes={args.processes} pinned={'yes' if pin else 'no'}{per_cpu}")


if __name__ == "__main__":
    main()
