"""The Starlette app: OpenAI-compatible routes under /v1, admin routes under /sim.

Every model call goes the same way: API key and outage, the x-sim-* headers, the body
(at most Config.max_body bytes), the route's checks and answer (a Reply), rate limits,
injected faults, then the latency of the model, and the answer (whole or streamed).
Every wait is `await asyncio.sleep`, so one process serves thousands of slow requests
at once, just like a real API seen from the client side.
"""
from __future__ import annotations

import asyncio
import json
import math
import zlib
from collections import OrderedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import admin, completion, embeddings, errors, headers, models, responses, validation
from .config import Config
from .envelope import Envelope
from .errors import ApiError
from .faults import Faults
from .limits import Bucket, Limiter
from .models import MODELS, Model
from .reply import Reply
from .stats import Stats

__all__ = ["Config", "create_app"]

HANG_SECONDS = 600.0
REMEMBER_BODY = 4096  # bytes: replies to bodies up to this size are kept...
REMEMBER_REPLIES = 1024  # ...this many of them, least recently added dropped
SLOW_FACTOR = 10.0


def jitter(raw: bytes) -> float:
    """A factor in [0.9, 1.1] from a hash of the request body: realistic yet reproducible."""
    return 0.9 + 0.2 * (zlib.crc32(raw) % 1001) / 1000


def wait_text(seconds: float) -> str:
    return f"{math.ceil(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3g}s"


class Simulator:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.limiter = Limiter()
        self.replies: OrderedDict[tuple[str, bytes], Reply] = OrderedDict()
        self.meters: dict[tuple[str, str], Bucket] = {}  # the models' default limits, reported only
        self.faults = Faults(config.seed, config.outage)

    # --- the steps every model call takes ------------------------------------------------------

    def gate(self, request: Request) -> Response | None:
        """The checks that come before reading the body: API key, then outage."""
        if self.config.require_key:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if key != self.config.require_key:
                return errors.bad_key(key)
        if self.faults.in_outage():
            return errors.overloaded()
        return None

    async def read_json(self, request: Request) -> tuple[dict, bytes]:
        """The body as a JSON object; 413 past the size limit (also for chunked bodies), 400 if not JSON."""
        raw = await self.read_body(request)
        return self.parse_json(raw), raw

    def remember(self, route: str, raw: bytes, reply: Reply) -> None:
        """Keep the Reply of a small request: the same body always gets the same answer (only
        `created` and the request id change), and lessons send the same request many times."""
        if len(raw) <= REMEMBER_BODY:
            self.replies[(route, raw)] = reply
            if len(self.replies) > REMEMBER_REPLIES:
                self.replies.popitem(last=False)

    async def read_body(self, request: Request) -> bytes:
        """The raw body; 413 past the size limit (also for chunked bodies)."""
        limit = self.config.max_body
        chunks, size = [], 0
        while True:  # straight from the ASGI channel: the common body is one message
            message = await request.receive()
            if message["type"] != "http.request":
                raise ApiError(400, "The client closed the connection before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"The request body is too large: this server accepts at most {limit} bytes.",
                               code="request_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    @staticmethod
    def parse_json(raw: bytes) -> dict:
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                           "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
                           "what was sent was not valid JSON.)")
        if not isinstance(body, dict):
            raise ApiError(400, "The JSON body of your request must be an object.")
        return body

    def find_model(self, body: dict, kind: str) -> Model:
        name = validation.required_model(body)
        model = MODELS.get(name)
        if model is None:
            raise errors.unknown_model(name)
        if model.kind != kind and kind == "chat":
            raise ApiError(404, "This is not a chat model and thus not supported in the v1/chat/completions "
                           "endpoint.", param="model", code="model_not_found")
        if model.kind != kind:
            raise ApiError(400, f"The model `{name}` does not support embeddings.", param="model")
        self.stats.by_model[name] += 1
        return model

    def rate_limit(self, sim: headers.SimHeaders, reply: Reply) -> tuple[Response | None, list]:
        """Check every limit that applies; take from the buckets only if all of them pass.

        The x-ratelimit-* headers describe the request's own limit (x-sim-rpm), else the
        server's (SIM_RPM), else the model's published default (reported, not enforced).
        """
        model = reply.model
        checks, shown = [], {}
        for kind, server_wide, own, default, cost in (
            ("requests", self.config.rpm, sim.rpm, model.rpm, 1),
            ("tokens", self.config.tpm, sim.tpm, model.tpm, reply.rate_cost),
        ):
            if server_wide > 0 or own > 0:
                enforced = [self.limiter.bucket(kind, model.name, limit) for limit in (server_wide, own) if limit > 0]
                checks += [(kind, bucket, cost) for bucket in enforced]
                shown[kind] = (enforced[-1], cost)
            else:  # one per model and kind: a fixed set, kept outside the LRU
                meter = self.meters.get((kind, model.name))
                if meter is None:
                    meter = self.meters[(kind, model.name)] = Bucket(default, enforced=False)
                shown[kind] = (meter, cost)
        for kind, bucket, cost in checks:
            wait = bucket.wait_for(cost)
            if wait > 0:
                return self.too_many(sim, model.name, kind, bucket, cost, wait, shown), []
        for _, bucket, cost in checks:
            bucket.take(cost)
        out = []
        for kind, (bucket, cost) in shown.items():
            if not bucket.enforced:  # a reported-only default: it counts what passed
                bucket.take(cost)
            out += bucket.headers(kind)
        return None, out

    def too_many(self, sim, model: str, kind: str, bucket, cost: float, wait: float, shown: dict) -> Response:
        unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        used = int(bucket.limit) - bucket.remaining()
        message = (f"Rate limit reached for {model} in organization org-simulator on {unit}: "
                   f"Limit {bucket.limit:g}, Used {used}, Requested {cost:g}. Please try again in {wait_text(wait)}. "
                   "Visit https://platform.openai.com/account/rate-limits to learn more.")
        out = {}
        for other, (other_bucket, _) in shown.items():
            out.update((k.decode(), v.decode()) for k, v in (bucket if other == kind else other_bucket).headers(other))
        omit = self.config.omit_retry_after if sim.omit_retry_after is None else sim.omit_retry_after
        if not self.faults.omit_retry_after(omit):
            out["retry-after"] = str(max(1, math.ceil(wait)))
            out["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return errors.error(429, message, kind, code="rate_limit_exceeded", headers=out)

    def injected_fault(self, sim: headers.SimHeaders) -> Response | None:
        """500s on purpose: x-sim-fault: error, x-sim-fail-first + x-sim-fail-key, or the error rate."""
        if sim.fault == "error":
            return errors.server_error()
        if sim.fail_first and self.faults.fail_first(sim.fail_key, sim.fail_first):
            return errors.server_error()
        if self.faults.random_error(self.config.error_rate if sim.error_rate is None else sim.error_rate):
            return errors.server_error()
        return None

    async def hang_until_disconnect(self, request: Request) -> Response:
        """x-sim-fault: hang: answer nothing until the client gives up (or 10 minutes pass)."""
        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        try:
            await asyncio.wait_for(disconnected(), HANG_SECONDS)
        except TimeoutError:
            pass
        return errors.error(504, "The request hung on purpose (x-sim-fault: hang).", "server_error")

    async def model_call(self, request: Request, kind: str, plan) -> Response:
        """One call to a model, from the key check to the answer; `plan(body, model, raw)` gives the Reply."""
        refused = self.gate(request)
        if refused:
            return refused
        sim = headers.read(request)
        raw = await self.read_body(request)
        route = request.scope["path"]
        reply = self.replies.get((route, raw))
        if reply is None:
            body = self.parse_json(raw)
            model = self.find_model(body, kind)
            reply = plan(body, model, raw)
            self.remember(route, raw, reply)
        else:
            self.stats.by_model[reply.model.name] += 1
        model = reply.model
        limited, rate_headers = self.rate_limit(sim, reply)
        if limited:
            return limited
        failed = self.injected_fault(sim)
        if failed:
            return failed
        if sim.fault == "hang":
            return await self.hang_until_disconnect(request)

        fixed = sim.latency if sim.latency is not None else (self.config.latency if self.config.latency >= 0 else None)
        factor = SLOW_FACTOR if sim.fault == "slow" else 1.0
        if reply.events is not None:
            events = reply.events()
            tokens = sum(1 for _, token in events if token)
            if fixed is None:
                j = jitter(raw)
                first = reply.model.network / self.config.speed * j * factor
                gap = reply.model.per_unit / self.config.speed * j * factor
            else:
                first = gap = fixed * factor / (tokens + 1)
            response = StreamingResponse(self.paced(events, first, gap), media_type="text/event-stream")
            response.raw_headers += rate_headers
            return response
        seconds = models.latency(model, reply.units, self.config.speed, jitter(raw)) if fixed is None else fixed
        if seconds * factor > 0:
            await asyncio.sleep(seconds * factor)
        response = JSONResponse(reply.body())
        response.raw_headers += rate_headers
        return response

    @staticmethod
    async def paced(events: list[tuple[bytes, bool]], first: float, gap: float):
        """The same total wait as a whole response, spread: time to first token, then one gap per token."""
        if first > 0:
            await asyncio.sleep(first)
        for data, token in events:
            if token and gap > 0:
                await asyncio.sleep(gap)
            yield data

    # --- routes ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        def plan(body: dict, model: Model, raw: bytes) -> Reply:
            validation.chat(body, model.max_output)
            return completion.plan(body, model, f"chatcmpl-sim{zlib.crc32(raw):08x}")
        return await self.model_call(request, "chat", plan)

    async def responses(self, request: Request) -> Response:
        return await self.model_call(request, "chat", responses.plan)

    async def embeddings(self, request: Request) -> Response:
        return await self.model_call(request, "embedding", lambda body, model, raw: embeddings.plan(body, model))

    async def legacy_completions(self, request: Request) -> Response:
        """The legacy completions API: none of the simulator's models is a completions model, as at OpenAI."""
        refused = self.gate(request)
        if refused:
            return refused
        body, _ = await self.read_json(request)
        name = validation.required_model(body)
        if name not in MODELS:
            raise errors.unknown_model(name)
        raise ApiError(404, "This is a chat model and not supported in the v1/completions endpoint. Did you mean to "
                       "use v1/chat/completions?", param="model", code="model_not_found")

    async def list_models(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused:
            return refused
        return JSONResponse({"object": "list", "data": [m.as_openai() for m in MODELS.values()]})

    async def get_model(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused:
            return refused
        name = request.path_params["name"]
        model = MODELS.get(name)
        if model is None:
            raise errors.unknown_model(name)
        return JSONResponse(model.as_openai())


def counted(stats: Stats, handler):
    """Wrap a /v1 route so every answer it gives is counted by status code (errors too)."""
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except ApiError as failure:
            response = failure.response()
        stats.record(response.status_code)
        return response
    return endpoint


async def api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Unknown routes and methods, answered as OpenAI answers them."""
    where = f"({request.method} {request.url.path})"
    if exc.status_code == 404:
        return errors.error(404, f"Invalid URL {where}")
    if exc.status_code == 405:
        return errors.error(405, f"Invalid method for URL {where}", headers=exc.headers)
    return errors.error(exc.status_code, str(exc.detail))


async def unexpected(request: Request, exc: Exception) -> Response:
    """Any error nobody expected: OpenAI's 500 body, never a plain-text page."""
    return errors.server_error()


def create_app(config: Config) -> Envelope:
    sim = Simulator(config)
    v1 = [
        ("/v1/chat/completions", sim.chat_completions, ["POST"]),
        ("/v1/responses", sim.responses, ["POST"]),
        ("/v1/embeddings", sim.embeddings, ["POST"]),
        ("/v1/completions", sim.legacy_completions, ["POST"]),
        ("/v1/models", sim.list_models, ["GET"]),
        ("/v1/models/{name:path}", sim.get_model, ["GET"]),
    ]
    endpoints = [(path, counted(sim.stats, handler), methods) for path, handler, methods in v1]
    routes = [Route(path, endpoint, methods=methods) for path, endpoint, methods in endpoints]
    routes += admin.routes(sim)
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                       Exception: unexpected})
    app.state.simulator = sim
    direct = {(method, path): endpoint for path, endpoint, methods in endpoints if "{" not in path
              for method in methods}
    return Envelope(app, config.max_body, direct)
