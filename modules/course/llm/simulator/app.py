"""The Starlette app: OpenAI-compatible routes under /v1, admin routes under /sim.

Every wait is `await asyncio.sleep`, so one process serves thousands of slow
requests at once, just like a real API seen from the client side.
"""
from __future__ import annotations

import asyncio
import json
import math
import zlib
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import chat, errors, models
from .answers import answer, content_text
from .embeddings import embed, to_base64
from .faults import Faults
from .limits import Limiter
from .models import MODELS, Model
from .stats import Stats
from .tokens import count_tokens, words_for

HANG_SECONDS = 600.0


@dataclass(frozen=True)
class Config:
    speed: float = 1.0
    latency: float = -1.0  # >= 0: exactly this many seconds per request, whatever the model
    rpm: float = 0.0  # 0 = unlimited
    tpm: float = 0.0
    error_rate: float = 0.0
    outage: tuple[float, float] | None = None
    require_key: str = ""
    seed: int = 1234


def header_number(request: Request, name: str) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


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
        self.faults = Faults(config.seed, config.outage)

    # --- checks shared by every /v1 route -------------------------------------------------

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

    def rate_limit(self, request: Request, model: str, tokens: int) -> tuple[Response | None, dict]:
        """Check every limit that applies; take from the buckets only if all of them pass."""
        checks = []
        for kind, server_wide, header, cost in (
            ("requests", self.config.rpm, "x-sim-rpm", 1),
            ("tokens", self.config.tpm, "x-sim-tpm", tokens),
        ):
            for limit in (server_wide, header_number(request, header)):
                if limit and limit > 0:
                    checks.append((kind, limit, cost, self.limiter.bucket(kind, model, limit)))
        headers = {}
        for kind, limit, cost, bucket in checks:
            wait = bucket.wait_for(cost)
            if wait > 0:
                return self.too_many(model, kind, limit, cost, bucket, wait), headers
        for kind, limit, cost, bucket in checks:
            bucket.take(cost)
            headers[f"x-ratelimit-limit-{kind}"] = f"{limit:g}"
            headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining())
        return None, headers

    def too_many(self, model: str, kind: str, limit: float, cost: float, bucket, wait: float) -> Response:
        unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        used = int(limit) - bucket.remaining()
        message = (f"Rate limit reached for {model} in organization org-simulator on {unit}: "
                   f"Limit {limit:g}, Used {used}, Requested {cost:g}. Please try again in {wait_text(wait)}.")
        headers = {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
            f"x-ratelimit-limit-{kind}": f"{limit:g}",
            f"x-ratelimit-remaining-{kind}": str(bucket.remaining()),
        }
        return errors.error(429, message, kind, code="rate_limit_exceeded", headers=headers)

    def injected_fault(self, request: Request) -> Response | None:
        """500s on purpose: x-sim-fault: error, x-sim-fail-first + x-sim-fail-key, or the error rate."""
        if request.headers.get("x-sim-fault") == "error":
            return errors.server_error()
        fail_first = header_number(request, "x-sim-fail-first")
        if fail_first and self.faults.fail_first(request.headers.get("x-sim-fail-key", ""), int(fail_first)):
            return errors.server_error()
        rate = header_number(request, "x-sim-error-rate")
        if self.faults.random_error(self.config.error_rate if rate is None else rate):
            return errors.server_error()
        return None

    def fixed_latency(self, request: Request) -> float | None:
        fixed = header_number(request, "x-sim-latency")
        if fixed is None and self.config.latency >= 0:
            fixed = self.config.latency
        return fixed

    def slow_factor(self, request: Request) -> float:
        return 10.0 if request.headers.get("x-sim-fault") == "slow" else 1.0

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

    async def read_json(self, request: Request) -> tuple[dict | None, bytes]:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return None, raw
        return (body if isinstance(body, dict) else None), raw

    def find_model(self, body: dict, kind: str) -> Model | Response:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return errors.error(400, "you must provide a model parameter", param="model")
        model = MODELS.get(name)
        if model is None:
            return errors.unknown_model(name)
        if model.kind != kind and kind == "chat":
            return errors.error(404, "This is not a chat model and thus not supported in the "
                                "v1/chat/completions endpoint.", param="model", code="model_not_found")
        if model.kind != kind:
            return errors.error(400, f"The model `{name}` does not support embeddings.", param="model")
        self.stats.by_model[name] += 1
        return model

    # --- routes ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused:
            return refused
        body, raw = await self.read_json(request)
        if body is None:
            return errors.error(400, "We could not parse the JSON body of your request.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return errors.error(400, "Missing required parameter: 'messages'.", param="messages",
                                code="missing_required_parameter")
        model = self.find_model(body, "chat")
        if isinstance(model, Response):
            return model

        text = answer(messages, model.detail)
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and count_tokens(text) > limit:
            text = " ".join(text.split()[: words_for(limit)])
            finish = "length"
        prompt_tokens = sum(count_tokens(content_text(m.get("content"))) for m in messages if isinstance(m, dict))
        completion_tokens = count_tokens(text)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}

        limited, headers = self.rate_limit(request, model.name, usage["total_tokens"])
        if limited:
            return limited
        failed = self.injected_fault(request)
        if failed:
            return failed
        if request.headers.get("x-sim-fault") == "hang":
            return await self.hang_until_disconnect(request)

        rid = f"chatcmpl-sim{zlib.crc32(raw):08x}"
        fixed = self.fixed_latency(request)
        factor = self.slow_factor(request)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            stream = self.stream(rid, model, text, finish, usage, fixed, factor, raw,
                                 bool(options.get("include_usage")))
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

        if fixed is None:
            seconds = models.latency(model, completion_tokens, self.config.speed, jitter(raw))
        else:
            seconds = fixed
        if seconds * factor > 0:
            await asyncio.sleep(seconds * factor)
        return JSONResponse(chat.completion(rid, model.name, text, finish, usage), headers=headers)

    async def stream(self, rid, model, text, finish, usage, fixed, factor, raw, include_usage):
        """The same total wait as a whole response, spread: time to first token, then one gap per piece."""
        parts = chat.pieces(text)
        if fixed is None:
            j = jitter(raw)
            first = model.network / self.config.speed * j * factor
            gap = model.per_unit / self.config.speed * j * factor
        else:
            first = gap = fixed * factor / (len(parts) + 1)
        if first > 0:
            await asyncio.sleep(first)
        yield chat.chunk(rid, model.name, {"role": "assistant", "content": "", "refusal": None})
        for part in parts:
            if gap > 0:
                await asyncio.sleep(gap)
            yield chat.chunk(rid, model.name, {"content": part})
        yield chat.chunk(rid, model.name, {}, finish)
        if include_usage:
            yield chat.usage_chunk(rid, model.name, usage)
        yield chat.DONE

    async def embeddings(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused:
            return refused
        body, raw = await self.read_json(request)
        if body is None:
            return errors.error(400, "We could not parse the JSON body of your request.")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if (not isinstance(texts, list) or not texts
                or not all((isinstance(t, str) and t) or (isinstance(t, list) and t) for t in texts)):
            return errors.error(400, "'input' must be a non-empty string or a non-empty array of non-empty strings.",
                                param="input")
        # Token arrays (lists of ints) are embedded by their numbers: deterministic, if not meaningful.
        texts = [t if isinstance(t, str) else " ".join(map(str, t)) for t in texts]
        model = self.find_model(body, "embedding")
        if isinstance(model, Response):
            return model
        dims = body.get("dimensions")
        if dims is not None:
            if not model.custom_dimensions:
                return errors.error(400, "This model does not support specifying dimensions.", param="dimensions")
            if not isinstance(dims, int) or not 1 <= dims <= model.dimensions:
                return errors.error(400, f"dimensions must be between 1 and {model.dimensions}.", param="dimensions")
        else:
            dims = model.dimensions
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return errors.error(400, "encoding_format must be 'float' or 'base64'.", param="encoding_format")

        tokens = sum(count_tokens(t) for t in texts)
        limited, headers = self.rate_limit(request, model.name, tokens)
        if limited:
            return limited
        failed = self.injected_fault(request)
        if failed:
            return failed
        if request.headers.get("x-sim-fault") == "hang":
            return await self.hang_until_disconnect(request)

        fixed = self.fixed_latency(request)
        seconds = models.latency(model, len(texts), self.config.speed, jitter(raw)) if fixed is None else fixed
        seconds *= self.slow_factor(request)
        if seconds > 0:
            await asyncio.sleep(seconds)
        encode = to_base64 if encoding == "base64" else list
        data = [{"object": "embedding", "index": i, "embedding": encode(embed(t, dims))} for i, t in enumerate(texts)]
        return JSONResponse({"object": "list", "data": data, "model": model.name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, headers=headers)

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
        return JSONResponse(model.as_openai()) if model else errors.unknown_model(name)

    # --- admin -------------------------------------------------------------------------------

    async def show_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.as_json())

    async def outage(self, request: Request) -> Response:
        body, _ = await self.read_json(request)
        seconds = (body or {}).get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            return errors.error(400, "send JSON like {\"seconds\": 10}", param="seconds")
        self.faults.start_outage(seconds)
        return JSONResponse({"outage_seconds": seconds})

    async def reset(self, request: Request) -> Response:
        self.stats.reset()
        self.limiter.reset()
        self.faults.reset()
        return JSONResponse({"reset": True})


def counted(stats: Stats, handler):
    """Wrap a /v1 route so every answer it gives is counted by status code."""
    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        stats.record(response.status_code)
        return response
    return endpoint


def create_app(config: Config) -> Starlette:
    sim = Simulator(config)
    v1 = [
        ("/v1/chat/completions", sim.chat_completions, ["POST"]),
        ("/v1/embeddings", sim.embeddings, ["POST"]),
        ("/v1/models", sim.list_models, ["GET"]),
        ("/v1/models/{name:path}", sim.get_model, ["GET"]),
    ]
    routes = [Route(path, counted(sim.stats, handler), methods=methods) for path, handler, methods in v1]
    routes += [
        Route("/sim/stats", sim.show_stats, methods=["GET"]),
        Route("/sim/outage", sim.outage, methods=["POST"]),
        Route("/sim/reset", sim.reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app
