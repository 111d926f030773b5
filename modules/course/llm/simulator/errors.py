"""Error responses shaped exactly like OpenAI's, so the SDK raises the matching exception."""
from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    """Raised anywhere while handling a request; answered as OpenAI's JSON error body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.param, self.code, self.headers = param, code, headers

    def response(self) -> JSONResponse:
        return error(self.status, self.message, self.kind, self.param, self.code, self.headers)


def error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 invalid_request_error, the answer to every invalid value."""
    return ApiError(400, message, param=param, code=code)


def invalid_value(param: str, value, allowed: str) -> ApiError:
    return bad(f"Invalid value for '{param}': {value!r}. {allowed}", param=param, code="invalid_value")


def invalid_type(param: str, value, expected: str) -> ApiError:
    return bad(f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
               param=param, code="invalid_type")


def type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), "a value")


def server_error() -> JSONResponse:
    return error(500, "The server had an error while processing your request. Sorry about that!", "server_error")


def overloaded() -> JSONResponse:
    return error(503, "The engine is currently overloaded, please try again later.", "server_error")


def unknown_model(name: str) -> ApiError:
    return ApiError(404, f"The model `{name}` does not exist or you do not have access to it.",
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


def body_too_large(limit: int) -> JSONResponse:
    return error(413, f"The request body is too large: this server accepts at most {limit} bytes "
                 f"({limit / 1024 / 1024:g} MiB).", code="request_too_large")
