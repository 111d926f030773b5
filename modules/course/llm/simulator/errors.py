"""Error responses shaped exactly like OpenAI's, so the SDK raises the matching exception."""
from __future__ import annotations

from starlette.responses import JSONResponse


def error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def server_error() -> JSONResponse:
    return error(500, "The server had an error while processing your request. Sorry about that!", "server_error")


def overloaded() -> JSONResponse:
    return error(503, "The engine is currently overloaded, please try again later.", "server_error")


def unknown_model(name: str) -> JSONResponse:
    return error(404, f"The model `{name}` does not exist or you do not have access to it.",
                 param="model", code="model_not_found")


def bad_key(key: str) -> JSONResponse:
    if not key:
        message = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                   "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
    else:
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        message = (f"Incorrect API key provided: {shown}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
    return error(401, message, code="invalid_api_key")
