"""The request headers that inject faults (`x-sim-*`), read and checked once per request.

A value that is not a finite number in its range is a 400 naming the header: a stray
`x-sim-latency: inf` must not hold a request (and the server's shutdown) forever.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.requests import Request

from .errors import ApiError

FAULTS = ("error", "hang", "slow")
MAX_LATENCY = 600.0  # seconds: the longest a request may be told to take
MAX_PER_MINUTE = 1e9
MAX_FAIL_FIRST = 1_000_000
MAX_KEY = 200


@dataclass(frozen=True)
class SimHeaders:
    fault: str | None = None  # "error", "hang" or "slow"
    latency: float | None = None
    rpm: float = 0.0  # 0 = no limit of the request's own
    tpm: float = 0.0
    error_rate: float | None = None
    fail_first: int = 0
    fail_key: str = ""
    omit_retry_after: float | None = None


NONE = SimHeaders()


def number(request: Request, name: str, low: float, high: float) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise ApiError(400, f"Invalid value for header '{name}': {raw[:40]!r}. It must be a number "
                       f"from {low:g} to {high:g}.", param=name, code="invalid_value")
    return value


def read(request: Request) -> SimHeaders:
    """The request's x-sim-* headers; NONE (cheaply) when it has none."""
    headers = request.headers
    if not any(k.startswith(b"x-sim-") for k, _ in request.scope["headers"]):
        return NONE
    fault = headers.get("x-sim-fault")
    if fault is not None and fault not in FAULTS:
        raise ApiError(400, f"Invalid value for header 'x-sim-fault': {fault[:40]!r}. "
                       f"Supported values are: {', '.join(FAULTS)}.", param="x-sim-fault", code="invalid_value")
    fail_first = number(request, "x-sim-fail-first", 0, MAX_FAIL_FIRST)
    if fail_first is not None and fail_first != int(fail_first):
        raise ApiError(400, "Invalid value for header 'x-sim-fail-first': it must be a whole number.",
                       param="x-sim-fail-first", code="invalid_value")
    fail_key = headers.get("x-sim-fail-key", "")
    if len(fail_key) > MAX_KEY:
        raise ApiError(400, f"Header 'x-sim-fail-key' is too long: at most {MAX_KEY} characters.",
                       param="x-sim-fail-key", code="invalid_value")
    return SimHeaders(
        fault=fault,
        latency=number(request, "x-sim-latency", 0, MAX_LATENCY),
        rpm=number(request, "x-sim-rpm", 0, MAX_PER_MINUTE) or 0.0,
        tpm=number(request, "x-sim-tpm", 0, MAX_PER_MINUTE) or 0.0,
        error_rate=number(request, "x-sim-error-rate", 0, 1),
        fail_first=int(fail_first or 0),
        fail_key=fail_key,
        omit_retry_after=number(request, "x-sim-omit-retry-after", 0, 1),
    )


def duration(seconds: float) -> str:
    """A wait as OpenAI's x-ratelimit-reset-* headers write it: 20ms, 1s, 8.64s, 6m0s, 1h2m3s."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms" if seconds > 0 else "0ms"
    hours, rest = divmod(round(seconds, 3), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
