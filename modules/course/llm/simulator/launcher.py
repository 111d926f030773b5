"""Start the simulator in its own process and get its URL back.

A separate process, never a thread: a thread would share the GIL with the client
and the measurements in the lessons would be about Python, not about waiting.

    with start(speed=50) as sim:
        client = AsyncOpenAI(base_url=sim.base_url, api_key="anything")
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque

READY = "simulator listening on "


class RunningSimulator:
    def __init__(self, process: subprocess.Popen, base_url: str, stderr_tail: deque) -> None:
        self.process = process
        self.base_url = base_url  # http://127.0.0.1:PORT/v1, what the OpenAI client wants
        self.url = base_url.removesuffix("/v1")  # the root, for the /sim admin routes
        self.stderr_tail = stderr_tail

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 5 seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningSimulator pid={self.pid} {self.base_url}>"


def _drain(stream, lines: queue.Queue | None, tail: deque) -> None:
    """Read a pipe until it closes: a pipe nobody reads fills up and blocks the server."""
    for line in stream:
        tail.append(line)
        if lines is not None:
            lines.put(line)
    if lines is not None:
        lines.put(None)


def start(*, speed: float | None = None, latency: float | None = None, extra_args=(),
          env: dict | None = None, timeout: float = 15) -> RunningSimulator:
    """Launch `python -m course.llm.simulator` on a free port and wait until it listens."""
    command = [sys.executable, "-m", "course.llm.simulator", "--host", "127.0.0.1", "--port", "0"]
    if speed is not None:
        command += ["--speed", str(speed)]
    if latency is not None:
        command += ["--latency", str(latency)]
    command += [str(a) for a in extra_args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **(env or {})},
    )
    lines: queue.Queue = queue.Queue()
    out_tail: deque = deque(maxlen=20)
    err_tail: deque = deque(maxlen=20)
    threading.Thread(target=_drain, args=(process.stdout, lines, out_tail), daemon=True).start()
    threading.Thread(target=_drain, args=(process.stderr, None, err_tail), daemon=True).start()

    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line and line.startswith(READY):
            return RunningSimulator(process, line[len(READY):].strip(), err_tail)
        if line is None:  # the process ended or time ran out
            process.kill()
            process.wait()
            time.sleep(0.1)  # let the stderr reader catch the last lines
            raise RuntimeError(
                f"the LLM simulator did not start within {timeout:g}s "
                f"(exit code {process.returncode}). Its last output:\n" + "".join(err_tail or out_tail)
            )
