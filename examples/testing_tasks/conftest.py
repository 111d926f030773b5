"""Fixtures: a Celery app in eager mode or with a real worker, and a simulated LLM.

The real worker is celery.contrib.pytest's: a worker thread in the test process that takes
messages from Redis (REDIS_URL), as a worker process would.
"""
import os

import pytest
import pytest_asyncio
import redis
from openai import AsyncOpenAI

pytest_plugins = ["celery.contrib.pytest"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
QUEUES = ("examples", "reports")  # the test worker reads `examples` only


@pytest.fixture(scope="session")
def celery_config():
    return {"broker_url": REDIS_URL, "result_backend": REDIS_URL,
            "task_default_queue": "examples",
            "task_routes": {"tasks.nightly_report": {"queue": "reports"}}}


@pytest.fixture(scope="session")
def celery_includes():
    return ["tasks"]


@pytest.fixture(scope="session", autouse=True)
def empty_queues_after():
    yield
    redis.Redis.from_url(REDIS_URL).delete(*QUEUES)  # a retry or a routed task left behind


@pytest.fixture(params=["eager", "worker"])
def mode(request, celery_session_app):
    """Each test runs twice: tasks run eagerly, in this process; then sent to a real worker."""
    eager = request.param == "eager"
    if not eager:
        request.getfixturevalue("celery_session_worker")
    celery_session_app.conf.task_always_eager = eager
    yield request.param
    celery_session_app.conf.task_always_eager = False


@pytest.fixture(scope="session")
def simulator():
    """The course's simulated LLM, on a free port, every call 0.2 s."""
    from course.llm.simulator import launcher

    with launcher.start(latency=0.2) as running:
        yield running


@pytest_asyncio.fixture
async def llm(simulator):
    client = AsyncOpenAI(base_url=simulator.base_url, api_key="not-needed", max_retries=0)
    yield client
    await client.close()
