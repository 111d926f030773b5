"""The suite is sealed from the learner's settings: a `.env` with a key, an OPENAI_BASE_URL and a
REDIS_URL, where the course would read it, reaches no test. Each address in it is a trap that
records whatever reaches it; the same runs without the seal show the trap would be hit."""
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from conftest import MODULES, TEST_REDIS_URL, lesson_env

LEARNER_KEY = "sk-learner-key-that-no-test-may-send"


@contextmanager
def traps():
    """An HTTP server that answers 401 to every request and a TCP port that counts connections."""
    llm_requests, redis_connections = [], []

    class LLM(BaseHTTPRequestHandler):
        def do_POST(self):
            llm_requests.append(self.headers.get("Authorization"))
            body = json.dumps({"error": {"message": "trap", "type": "invalid_request_error"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    class Redis(socketserver.BaseRequestHandler):
        def handle(self):
            redis_connections.append(1)

    llm = ThreadingHTTPServer(("127.0.0.1", 0), LLM)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Redis)
    for server in (llm, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield llm.server_port, tcp.server_address[1], llm_requests, redis_connections
    finally:
        for server in (llm, tcp):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def learner_clone(tmp_path_factory):
    """A copy of the course whose `.env` (the file its settings read by default) is a learner's."""
    copy = tmp_path_factory.mktemp("learner-clone")
    shutil.copytree(MODULES, copy / "modules", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    with traps() as (llm_port, redis_port, llm_requests, redis_connections):
        (copy / ".env").write_text(f"OPENAI_API_KEY={LEARNER_KEY}\n"
                                   f"OPENAI_BASE_URL=http://127.0.0.1:{llm_port}/v1\n"
                                   f"REDIS_URL=redis://127.0.0.1:{redis_port}/0\n")
        yield copy, llm_requests, redis_connections


@pytest.fixture
def learner(learner_clone):
    """The clone, with its traps emptied: each test sees only what reached them during it."""
    for hits in learner_clone[1:]:
        hits.clear()
    return learner_clone


def run_in(copy, args, sealed=True, timeout=180):
    """Run `args` with the copy's course first on the path, in the environment a test gives a lesson."""
    env = lesson_env(PYTHONPATH=str(copy / "modules"), SIM_SPEED="5", COURSE_DATA=str(copy / ".course-data"))
    if not sealed:
        del env["COURSE_ENV_FILE"]
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_lesson_uses_its_own_simulator_and_sends_the_learner_key_nowhere(learner):
    copy, llm_requests, _ = learner
    process = run_in(copy, [str(copy / "modules" / "02_concurrent_llm.py"), "--no-pause"])
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr
    assert "simulated LLM" in process.stdout
    assert llm_requests == []

    unsealed = run_in(copy, [str(copy / "modules" / "02_concurrent_llm.py"), "--no-pause"], sealed=False)
    assert unsealed.returncode != 0  # the same run, reading the copy's .env, fails on the trap
    assert llm_requests and set(llm_requests) == {f"Bearer {LEARNER_KEY}"}


WORKER_PROGRAM = """
import json
from course import llm
from course.jobs import tasks, workers
from course.settings import settings
worker = workers.ensure_worker()
try:
    result = tasks.chat_completion.delay("Say hello.")
    print(json.dumps({"id": result.id, "answer": result.get(timeout=30)["answer"],
                      "started_worker": worker.started_here, "redis_url": settings.redis_url,
                      "uses_simulator": settings.uses_simulator}))
finally:
    worker.stop()
"""


def test_a_worker_task_runs_on_the_tests_redis_and_simulator(learner, private_redis):
    copy, llm_requests, redis_connections = learner
    process = run_in(copy, ["-c", WORKER_PROGRAM])
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr
    seen = json.loads(process.stdout.strip().splitlines()[-1])
    assert seen["started_worker"] and seen["uses_simulator"] and seen["answer"]
    assert seen["redis_url"] == TEST_REDIS_URL
    assert redis.Redis.from_url(TEST_REDIS_URL).exists(f"celery-task-meta-{seen['id']}")
    assert llm_requests == [] and redis_connections == []
    assert LEARNER_KEY not in (copy / ".course-data" / "worker.log").read_text()


def test_without_redis_url_in_the_environment_the_learner_redis_is_not_read(learner):
    copy, _, redis_connections = learner
    program = "from course.settings import settings; print(settings.redis_url)"
    env = {k: v for k, v in lesson_env().items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = str(copy / "modules")
    seen = [subprocess.run([sys.executable, "-c", program], cwd=copy, env=env, capture_output=True,
                           text=True, check=True).stdout.strip()]
    del env["COURSE_ENV_FILE"]
    seen.append(subprocess.run([sys.executable, "-c", program], cwd=copy, env=env, capture_output=True,
                               text=True, check=True).stdout.strip())
    assert seen[0] == "redis://localhost:6379/0"  # the default: the copy's .env was not read
    assert seen[1].startswith("redis://127.0.0.1:") and seen[1] != seen[0]  # unsealed, it is
    assert redis_connections == []
