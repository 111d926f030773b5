"""Every setting of the course, read once from the environment and `.env`.

The environment wins over `.env` (python-dotenv does not override what is already set),
so CI and docker compose can set anything without touching the file.
`.env.example` lists each setting with its default and what it does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parents[2]
# Git-ignored: the embedded Redis's data, the workers' logs, beat's schedule, the last runs.
# COURSE_DATA moves it (only the environment sets it: the tests give each test process its own).
DATA = Path(ROOT, os.environ.get("COURSE_DATA", "").strip() or ".course-data")
if os.environ.get("COURSE_DATA", "").strip():
    try:  # a folder that cannot be made says so now, not in a traceback halfway through a lesson
        DATA.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SystemExit(f"COURSE_DATA={DATA} cannot be used ({error.strerror}): "
                         "point it at a folder you can write to, or unset it.")
# COURSE_ENV_FILE names the file to load (relative to the repo); empty loads none. The tests set
# it empty, so a learner's key or Redis in .env never reaches them. Only the environment sets it.
ENV_FILE = os.environ.get("COURSE_ENV_FILE", ".env").strip()
if ENV_FILE:
    load_dotenv(ROOT / ENV_FILE)


def shown(path: Path) -> str:
    """A path as a message shows it: relative to the repo when it is inside, else in full."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _text(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _number(name: str, default: float) -> float:
    raw = _text(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number: set it to a number in .env or unset it.")


# The job API's two demo callers: known to everyone, so the API warns when it listens beyond
# 127.0.0.1 with them. Set API_TOKENS to tokens of your own (openssl rand -hex 24) for that.
DEMO_API_TOKENS = "alice:alice-demo-token,bob:bob-demo-token"


@dataclass(frozen=True)
class Settings:
    # The LLM: nothing set means the simulator that ships with the course.
    openai_api_key: str = _text("OPENAI_API_KEY")
    openai_base_url: str = _text("OPENAI_BASE_URL")
    chat_model: str = _text("CHAT_MODEL", "gpt-4o-mini")
    large_model: str = _text("LARGE_MODEL", "gpt-4o")
    embedding_model: str = _text("EMBEDDING_MODEL", "text-embedding-3-small")
    llm_timeout: float = _number("LLM_TIMEOUT", 30.0)

    # The simulated LLM.
    sim_host: str = _text("SIM_HOST", "127.0.0.1")
    sim_port: int = int(_number("SIM_PORT", 8100))
    sim_speed: float = _number("SIM_SPEED", 1.0)
    sim_latency: float = _number("SIM_LATENCY", -1.0)
    sim_rpm: float = _number("SIM_RPM", 0.0)
    sim_tpm: float = _number("SIM_TPM", 0.0)
    sim_error_rate: float = _number("SIM_ERROR_RATE", 0.0)
    sim_outage: str = _text("SIM_OUTAGE")
    sim_require_key: str = _text("SIM_REQUIRE_KEY")
    sim_admin_key: str = _text("SIM_ADMIN_KEY")  # wanted by the /sim admin routes; empty = open
    sim_max_body_mb: float = _number("SIM_MAX_BODY_MB", 8.0)
    sim_omit_retry_after: float = _number("SIM_OMIT_RETRY_AFTER", 0.0)

    # Redis: the broker and the result backend.
    redis_url: str = _text("REDIS_URL", "redis://localhost:6379/0")
    # The most memory the redis-server the course starts may use (noeviction: full = writes refused).
    redis_maxmemory: str = _text("REDIS_MAXMEMORY", "256mb")

    # Webhooks: a task POSTs only to host:port entries on this list (empty: the course's own
    # receiver, 127.0.0.1 and localhost on WEBHOOK_PORT), signed with WEBHOOK_SECRET (empty: one
    # the course generates and keeps in .course-data/, shared by the worker and the lessons).
    webhook_port: int = int(_number("WEBHOOK_PORT", 8200))
    webhook_allowed: str = _text("WEBHOOK_ALLOWED")
    webhook_secret: str = _text("WEBHOOK_SECRET")

    # The job API (lesson 07, make api): where it listens, who may call it (owner:token pairs,
    # comma-separated; the default is two demo callers whose tokens are public), and its limits.
    api_host: str = _text("API_HOST", "127.0.0.1")
    api_port: int = int(_number("API_PORT", 8000))
    api_tokens: str = _text("API_TOKENS", DEMO_API_TOKENS)
    api_max_texts: int = int(_number("API_MAX_TEXTS", 20))  # texts in one job
    api_max_text_chars: int = int(_number("API_MAX_TEXT_CHARS", 4000))  # characters in one text
    api_max_total_chars: int = int(_number("API_MAX_TOTAL_CHARS", 20000))  # characters in one job
    api_max_active: int = int(_number("API_MAX_ACTIVE", 10))  # unfinished jobs one caller may have

    # Celery: how long Redis waits for an unacknowledged task before handing it to another
    # worker. Time limits and retry delays are derived from it, so they always stay below it.
    celery_visibility_timeout: float = _number("CELERY_VISIBILITY_TIMEOUT", 300.0)
    # How long a lesson waits for a worker of yours to answer before starting one itself.
    worker_wait: float = _number("WORKER_WAIT", 4.0)
    # A task delivered more often than this (its worker process died each time) is not run again:
    # it is marked FAILURE and kept in the dead letter store.
    max_deliveries: int = int(_number("MAX_DELIVERIES", 3))
    # How many entries the dead letter store keeps; past it, the oldest are dropped (and logged).
    dead_letters_max: int = int(_number("DEAD_LETTERS_MAX", 1000))

    # The worker's Prometheus metrics (course/jobs/metrics.py): where each worker serves /metrics.
    # Port taken (a second worker on this machine): a free one, said in the worker's log.
    metrics_host: str = _text("METRICS_HOST", "127.0.0.1")
    metrics_port: int = int(_number("METRICS_PORT", 9808))

    # The step runner.
    no_pause: bool = _text("COURSE_NO_PAUSE") not in ("", "0", "false")

    @property
    def uses_simulator(self) -> bool:
        """True when no real endpoint is configured, so the course starts its own."""
        return not self.openai_api_key and not self.openai_base_url


settings = Settings()
