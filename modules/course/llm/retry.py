"""When to retry an LLM call, and how long to wait before the next attempt.

    try:
        answer = await client.chat.completions.create(...)
    except Exception as error:
        if not is_transient(error):
            raise                                   # a bad key or a bad request: retrying won't help
        await asyncio.sleep(delay_before_retry(error, attempt))

No framework here: lesson 02 retries in a loop with these, the Celery tasks turn the same wait
into a retry's countdown.
"""
from __future__ import annotations

import email.utils
import random
import re
import time

import openai

# 408 request timeout, 429 too many requests, and every 5xx: the server may answer next time.
RETRYABLE_STATUS = {408, 429}


def is_transient(error: BaseException) -> bool:
    """True when the same call may well succeed later: 429, 5xx, a timeout, a lost connection."""
    if isinstance(error, openai.APIConnectionError):  # APITimeoutError is one of these too
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUS or error.status_code >= 500
    return isinstance(error, (TimeoutError, ConnectionError))


def backoff_seconds(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: anywhere from 0 to base * 2**attempt, at most cap.

    attempt 0 waits up to 1 s, attempt 1 up to 2 s, then 4, 8 ... The randomness spreads out
    clients that failed together, so they do not all come back at the same moment.
    """
    return random.uniform(0, min(cap, base * 2 ** attempt))


def retry_after_seconds(error: BaseException) -> float | None:
    """How long the server asked us to wait, in seconds, or None when it did not say.

    `retry-after-ms`, then `Retry-After` (seconds or an HTTP date); for a 429 without either,
    when the exhausted limit resets (`x-ratelimit-reset-requests` / `-tokens`, e.g. "6m0s").
    """
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = headers.get("retry-after")
    seconds = _number(raw)
    if seconds is None:
        seconds = _seconds_until(raw)
    if seconds is not None:
        return seconds
    if getattr(error, "status_code", None) == 429:
        return _reset_of_exhausted_limit(headers)
    return None


def delay_before_retry(error: BaseException, attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """The wait before the next attempt: the backoff, or longer if the server asked; at most cap."""
    backoff = backoff_seconds(attempt, base, cap)
    asked = retry_after_seconds(error)
    return min(cap, backoff if asked is None else max(asked, backoff))


def duration_seconds(text: str | None) -> float | None:
    """ "6m0s" -> 360.0, "1s" -> 1.0, "20ms" -> 0.02 (the format of OpenAI's reset headers)."""
    if not text or not re.fullmatch(r"(\d+(\.\d+)?(h|ms|m|s))+", text.strip()):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text))


def _reset_of_exhausted_limit(headers) -> float | None:
    resets = {kind: duration_seconds(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")}
    exhausted = [seconds for kind, seconds in resets.items()
                 if seconds is not None and headers.get(f"x-ratelimit-remaining-{kind}") == "0"]
    known = exhausted or [seconds for seconds in resets.values() if seconds is not None]
    return max(known) if known else None


def _number(text: str | None) -> float | None:
    try:
        return max(0.0, float(text)) if text is not None else None
    except ValueError:
        return None


def _seconds_until(http_date: str | None) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date) if http_date else None
    except (TypeError, ValueError):
        return None
    return None if moment is None else max(0.0, moment.timestamp() - time.time())
