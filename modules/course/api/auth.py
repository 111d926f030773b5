"""Who is calling: a bearer token from API_TOKENS names the caller; a short stream token opens
one job's event stream.

A browser's EventSource cannot send an Authorization header, so each job answer carries an
events link with `?token=`: an HMAC of the job id and an expiry, keyed with the owner's own bearer
token. It opens that one job's stream, for STREAM_TOKEN_SECONDS, and nothing else; the access log
never shows it (see __main__.py). Every comparison runs in constant time.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import time

from fastapi import HTTPException, Request

from course.settings import DEMO_API_TOKENS, settings

STREAM_TOKEN_SECONDS = 120  # a reconnect after that asks GET /jobs/<id> for a fresh link
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jobs"'}


class BadTokens(ValueError):
    """API_TOKENS cannot be read."""


def parse_tokens(text: str) -> dict[str, str]:
    """{owner: token} from "alice:token-a,bob:token-b"."""
    callers: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        owner, _, token = (piece.strip() for piece in pair.partition(":"))
        if not owner or not token:
            raise BadTokens(f"API_TOKENS: {owner or '(empty)'!r} has no owner:token form")
        if len(token) < 12:
            raise BadTokens(f"API_TOKENS: the token of {owner!r} is shorter than 12 characters")
        if owner in callers or token in callers.values():
            raise BadTokens(f"API_TOKENS names {owner!r} or its token twice")
        callers[owner] = token
    if not callers:
        raise BadTokens("API_TOKENS is empty: set owner:token pairs, e.g. alice:" + "x" * 24)
    return callers


USES_DEMO_TOKENS = settings.api_tokens == DEMO_API_TOKENS


@functools.cache
def callers() -> dict[str, str]:
    """{owner: token} of API_TOKENS, read once (BadTokens when it cannot be read)."""
    return parse_tokens(settings.api_tokens)


def owner_of(token: str) -> str | None:
    """The caller whose token this is. Every token is compared, in constant time each."""
    found = None
    for owner, known in callers().items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = owner
    return found


async def caller(request: Request) -> str:
    """FastAPI dependency: the owner named by `Authorization: Bearer <token>`, else 401.
    (async although it never waits: FastAPI runs a plain function in a thread, a cost per request)"""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Send your token: Authorization: Bearer <token> (API_TOKENS lists them).",
                            headers=CHALLENGE)
    owner = owner_of(token.strip())
    if owner is None:
        raise HTTPException(401, "That token is not one of API_TOKENS.", headers=CHALLENGE)
    return owner


def stream_token(job_id: str, owner: str, now: float | None = None) -> str:
    """`<expiry>.<hmac>`: opens the event stream of this job only, for STREAM_TOKEN_SECONDS."""
    expires = int((now or time.time()) + STREAM_TOKEN_SECONDS)
    return f"{expires}.{_signature(job_id, owner, expires)}"


def stream_token_owner(token: str, job_id: str, owner: str) -> bool:
    """True when `token` is a live stream token for this job of this owner."""
    expiry, _, signature = token.partition(".")
    if not expiry.isdigit() or int(expiry) < time.time() or owner not in callers():
        return False
    return hmac.compare_digest(signature, _signature(job_id, owner, int(expiry)))


def _signature(job_id: str, owner: str, expires: int) -> str:
    key = callers()[owner].encode()
    return hmac.new(key, f"{job_id}.{expires}".encode(), hashlib.sha256).hexdigest()[:32]
