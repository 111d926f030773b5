"""What wraps every answer, whatever the route: request id headers, and the body size limit.

A pure ASGI wrapper (cheap on the hot path). A body announced bigger than the limit is
answered 413 before a byte of it is read, so a huge upload costs neither memory nor
other requests' time.
"""
from __future__ import annotations

import os
import time

from . import errors

VERSION = (b"openai-version", b"2020-10-01")


class Envelope:
    def __init__(self, app, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b"req_" + os.urandom(16).hex().encode()
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
        await self.app(scope, receive, send_with_headers)
