"""The LLM client factory: the simulator by default, OpenAI or any compatible server by env.

- nothing set               -> the course starts its simulated LLM in the background
- OPENAI_API_KEY            -> the real OpenAI API
- OPENAI_BASE_URL (+ key)   -> any OpenAI-compatible server (Ollama, vLLM, LM Studio, ...)

Lessons always talk through the real `openai` SDK, so the same code runs against all three.
"""
from __future__ import annotations

import atexit
import os

import openai
from openai import AsyncOpenAI, OpenAI

from course.settings import settings

_simulator = None  # the simulator this process started, if any


def ensure_endpoint() -> str | None:
    """Make sure an LLM answers somewhere; return its base URL (None: OpenAI's own).

    When nothing is configured, start the simulator once for this process and export
    OPENAI_BASE_URL, so a worker this process starts talks to the same server.
    """
    global _simulator
    if not settings.uses_simulator:
        return settings.openai_base_url or None
    if _simulator is None:
        from course.llm.simulator import launcher

        _simulator = launcher.start(speed=settings.sim_speed)
        atexit.register(stop_simulator)
        os.environ["OPENAI_BASE_URL"] = _simulator.base_url
    return _simulator.base_url


def stop_simulator() -> None:
    global _simulator
    if _simulator is not None:
        _simulator.stop()
        _simulator = None
        os.environ.pop("OPENAI_BASE_URL", None)


def describe() -> str:
    """One line for the learner: which LLM this run talks to."""
    if settings.openai_base_url:
        return f"the OpenAI-compatible server at {settings.openai_base_url}"
    if settings.openai_api_key:
        return "the OpenAI API (OPENAI_API_KEY is set)"
    where = _simulator.base_url if _simulator else "a local port"
    return (f"the course's simulated LLM at {where} "
            "(set OPENAI_API_KEY or OPENAI_BASE_URL in .env to use a real model)")


def _client_options(max_retries: int) -> dict:
    base_url = ensure_endpoint()
    # The simulator accepts any key; a real server gets the learner's key.
    api_key = settings.openai_api_key or ("not-needed" if base_url else "")
    # max_retries=0: the lessons do their own retrying, so every failure stays visible.
    return dict(base_url=base_url, api_key=api_key,
                timeout=settings.llm_timeout, max_retries=max_retries)


def make_client(max_retries: int = 0) -> AsyncOpenAI:
    """An async client for the configured LLM (make it inside the event loop that uses it)."""
    return AsyncOpenAI(**_client_options(max_retries))


def make_sync_client(max_retries: int = 0) -> OpenAI:
    """A blocking client, for code that has no event loop."""
    return OpenAI(**_client_options(max_retries))


def explain(error: BaseException) -> str | None:
    """A short message that says what went wrong with the LLM and what to do, or None."""
    where = settings.openai_base_url or ("the OpenAI API" if settings.openai_api_key else "the simulator")
    if isinstance(error, openai.APITimeoutError):
        return (f"The LLM at {where} did not answer within {settings.llm_timeout:g} s. "
                "Check the server, or raise LLM_TIMEOUT in .env.")
    if isinstance(error, openai.APIConnectionError):
        return (f"Cannot reach the LLM at {where}. Is the server running and the URL right? "
                "Fix OPENAI_BASE_URL in .env, or unset it to use the course's simulator.")
    if isinstance(error, openai.AuthenticationError):
        if not settings.openai_api_key:
            return (f"The LLM at {where} needs an API key (401): set OPENAI_API_KEY in .env "
                    "to a key it accepts.")
        return (f"The LLM at {where} refused the API key (401). "
                "Check OPENAI_API_KEY in .env, or unset it to use the course's simulator.")
    if isinstance(error, openai.NotFoundError):
        return (f"The LLM at {where} does not know a model the lesson asked for (404): "
                f"{_message(error)} Set CHAT_MODEL, LARGE_MODEL or EMBEDDING_MODEL in .env "
                "to models your server has.")
    if isinstance(error, openai.PermissionDeniedError):
        return f"The LLM at {where} denied access (403): {_message(error)}"
    if isinstance(error, openai.APIStatusError):
        return f"The LLM at {where} answered {error.status_code}: {_message(error)}"
    return None


def _message(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    return str(body.get("message") or error.message)
