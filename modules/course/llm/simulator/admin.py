"""Admin routes under /sim: counters, outages on demand, reset. Lessons and tests use them.

When the server has an admin key (SIM_ADMIN_KEY), only a request carrying it, in the
x-sim-admin-key header or as the bearer token, reaches these routes; others get 401.
Without one they are open, which is fine for a simulator on 127.0.0.1.
"""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import errors


def allowed(request: Request, key: str) -> bool:
    if not key:
        return True
    given = request.headers.get("x-sim-admin-key", "")
    if not given:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return hmac.compare_digest(given.encode(), key.encode())


def routes(sim) -> list[Route]:
    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            if not allowed(request, sim.config.admin_key):
                return errors.error(401, "This admin route needs the simulator's admin key (SIM_ADMIN_KEY) in the "
                                    "x-sim-admin-key header or as the bearer token.", code="invalid_admin_key")
            return await handler(request)
        return endpoint

    async def show_stats(request: Request) -> Response:
        # buckets and fail_keys: what the server remembers per client-chosen value (bounded)
        return JSONResponse({**sim.stats.as_json(), "buckets": len(sim.limiter.buckets),
                             "fail_keys": len(sim.faults.attempts)})

    async def outage(request: Request) -> Response:
        body, _ = await sim.read_json(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86_400:
            return errors.error(400, "send JSON like {\"seconds\": 10} (0 to 86400)", param="seconds")
        sim.faults.start_outage(seconds)
        return JSONResponse({"outage_seconds": seconds})

    async def reset(request: Request) -> Response:
        sim.stats.reset()
        sim.limiter.reset()
        sim.meters.clear()
        sim.faults.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/sim/stats", guarded(show_stats), methods=["GET"]),
        Route("/sim/outage", guarded(outage), methods=["POST"]),
        Route("/sim/reset", guarded(reset), methods=["POST"]),
    ]
