"""A tiny webhook receiver: an HTTP server on 127.0.0.1 that a task POSTs JSON to when it is done.

    with webhook.receiver() as hook:
        task.delay(webhook_url=hook.url)
        call = hook.wait(timeout=30)   # {"body": {...}, "received_at": time.time()}
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """The calls received so far, and a way to wait for the first one."""

    def __init__(self, url: str):
        self.url = url
        self.calls: list[dict] = []
        self._arrived = threading.Event()

    def record(self, body: dict) -> None:
        self.calls.append({"body": body, "received_at": time.time()})
        self._arrived.set()

    def wait(self, timeout: float) -> dict | None:
        """The first call, or None if none arrived within `timeout` seconds."""
        return self.calls[0] if self._arrived.wait(timeout) else None


@contextlib.contextmanager
def receiver(path: str = "/hooks/job-done"):
    """Serve POST `path` on a free port in a background thread; stop when the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != path:
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self.send_error(400, "the body is not JSON")
                return
            hook.record(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):  # quiet: the lesson shows what arrived
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Receiver(f"http://127.0.0.1:{server.server_port}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
