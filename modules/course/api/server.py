"""The job API in a process of its own, started and stopped for a lesson, a test or a benchmark.

    api = RunningApi().start()          # python -m course.api on a free port of 127.0.0.1
    alice, bob = api.callers()          # httpx clients with the first two callers' tokens
    api.kill(); api.start()             # a crash, then the same API again on the same port
    api.close()                         # stop it, and close the clients

A lesson asks for it as `api` (course/runner/providers.py): `lesson_api()` starts it with Redis
and says where it runs; the runner closes it when the lesson ends.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from course.console import Stop, notice, waiting
from course.settings import DATA, DEMO_API_TOKENS, ROOT, settings, shown

LOG = DATA / "api.log"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningApi:
    """`python -m course.api` on 127.0.0.1:`port` (a free one by default), its log in `log`."""

    def __init__(self, port: int = 0, env: dict[str, str] | None = None, log: Path = LOG):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.log = log
        self.process: subprocess.Popen | None = None
        self._clients: list[httpx.Client] = []
        self._pair: tuple[httpx.Client, httpx.Client] | None = None

    @property
    def tokens(self) -> dict[str, str]:
        """{owner: token} the API was started with."""
        from course.api.auth import parse_tokens

        return parse_tokens(self.env.get("API_TOKENS", settings.api_tokens))

    @property
    def token_hint(self) -> str:
        """What to paste into the page: the first demo token, or where your own tokens are."""
        if self.env.get("API_TOKENS", settings.api_tokens) == DEMO_API_TOKENS:
            owner, token = next(iter(self.tokens.items()))
            return f"{token} ({owner}'s demo token)"
        return "a token from API_TOKENS in your .env"

    def start(self, timeout: float = 30) -> RunningApi:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a" if self.process else "w") as log:  # a restart adds to the log
            self.process = subprocess.Popen(
                [sys.executable, "-m", "course.api", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
        raise Stop(f"The job API did not come up on {self.url} within {timeout:g} s. The end of {self.log}:\n{tail}")

    def close(self) -> None:
        """Stop the API and close the clients it gave out: the end of a lesson or a test."""
        self.stop()
        for client in self._clients:
            client.close()

    def stop(self, timeout: float = 10) -> None:
        """A graceful stop (SIGTERM: requests in flight and their background tasks finish)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing in the process gets to finish."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL) if hasattr(os, "killpg") else self.process.kill()
            self.process.wait(10)

    def caller(self, owner: str) -> httpx.Client:
        """An HTTP client that calls the API as `owner` (its bearer token in every request)."""
        client = httpx.Client(base_url=self.url, timeout=30,
                              headers={"Authorization": f"Bearer {self.tokens[owner]}"})
        self._clients.append(client)
        return client

    def callers(self) -> tuple[httpx.Client, httpx.Client]:
        """Clients for the first two callers of API_TOKENS (alice and bob with the defaults)."""
        owners = list(self.tokens)
        if len(owners) < 2:
            raise Stop("This needs two callers in API_TOKENS (owner:token,owner:token); it has one.")
        if self._pair is None:
            self._pair = (self.caller(owners[0]), self.caller(owners[1]))
        return self._pair

    def async_caller(self, owner: str | None = None) -> httpx.AsyncClient:
        """An async client as `owner` (the first caller by default); close it with `async with`."""
        token = self.tokens[owner or next(iter(self.tokens))]
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        return httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"})


def lesson_api() -> RunningApi:
    """The API for one lesson run, with Redis (started on localhost when none answers)."""
    from course.jobs.redis_server import ensure_redis

    ensure_redis()
    api = RunningApi()
    with waiting(f"Starting the job API for this lesson on {api.url}"):
        api.start()
    notice(f"Started the job API for this lesson at {api.url} (log: {shown(LOG)}); it stops "
           f"when the lesson ends. To run it yourself: make api  (then open http://127.0.0.1:{settings.api_port}/)")
    return api
