"""What wraps every answer, whatever the route: request id headers, and the body size limit.

A pure ASGI wrapper (cheap on the hot path). A body announced bigger than the limit is
answered 413 before a byte of it is read, so a huge upload costs neither memory nor
other requests' time. The model routes (exact paths) are called directly, not through
Starlette's router and middleware: that halves the framework's cost per call. Every
other path (admin, models, unknown routes) goes to the Starlette app.
"""
from __future__ import annotations

import logging
import os
import time

from starlette.requests import Request

from . import errors

log = logging.getLogger("uvicorn.error")

VERSION = (b"openai-version", b"2020-10-01")


class Envelope:
    def __init__(self, app, max_body: int, direct: dict | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.direct = direct or {}  # {(method, path): endpoint}, endpoints that answer every error themselves
        self.state = app.state
        self.prefix = os.urandom(8).hex().encode()
        self.count = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1  # unique per request: a random prefix per server run, then a counter
        request_id = b"req_%s%016x" % (self.prefix, self.count)
        started = time.perf_counter()

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                spent = str(int((time.perf_counter() - started) * 1000)).encode()
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id),
                                      (b"openai-processing-ms", spent), VERSION]
            await send(message)

        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    response = errors.body_too_large(self.max_body)
                    response.headers["connection"] = "close"  # the rest of the body is never read
                    await response(scope, receive, send_with_headers)
                    return
                break
        endpoint = self.direct.get((scope["method"], scope["path"]))
        if endpoint is None:
            await self.app(scope, receive, send_with_headers)
            return
        try:
            response = await endpoint(Request(scope, receive, send))
        except Exception:  # what nobody expected: logged, and answered as OpenAI's JSON 500
            log.exception("unexpected error in %s %s", scope["method"], scope["path"])
            response = errors.server_error()
        await response(scope, receive, send_with_headers)
