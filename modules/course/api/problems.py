"""Every error the API answers is `application/problem+json` (RFC 9457): type, title, status and
a `detail` a person can act on. FastAPI's own errors (404 route, 405, 422 validation) come out the
same way; a 422 keeps FastAPI's list of errors as `errors`, and its `detail` is one sentence.
Malformed JSON is a 400, Redis down a 503; a bug is a 500 that shows no traceback.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

import redis
from kombu.exceptions import OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("course.api")


def problem(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def validation_detail(errors: list[dict]) -> str:
    """One sentence from pydantic's errors: "texts: at most 20 texts per job ...; kind: ..."."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "body"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).description
    return problem(error.status_code, detail, headers=getattr(error, "headers", None))


async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        reason = (broken.get("ctx") or {}).get("error", "it does not parse")
        return problem(400, f"The body is not valid JSON: {reason}.")
    if any(list(e.get("loc", ())) == ["body"] and e.get("type") == "model_attributes_type" for e in errors):
        return problem(422, 'Send the job as a JSON object, {"kind": ..., "texts": [...]}, with '
                            "Content-Type: application/json.")
    listed = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")} for e in errors]
    return problem(422, validation_detail(errors), errors=listed)


async def _redis_down(request: Request, error: Exception) -> JSONResponse:
    log.error("Redis (or Celery's broker) did not answer: %s", error)
    return problem(503, "The job store (Redis) does not answer or is too busy; try again shortly.",
                   headers={"Retry-After": "5"})


async def _bug(request: Request, error: Exception) -> JSONResponse:
    log.exception("Unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "Something went wrong on our side; the API's log says what.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(redis.ConnectionError, _redis_down)
    app.add_exception_handler(OperationalError, _redis_down)  # Celery could not reach its broker
    app.add_exception_handler(Exception, _bug)
