"""docker-compose.yml, checked without a Docker engine: its shape, and every Python service's
command started here, outside Docker, the way the container would start it."""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from course.jobs import redis_server, workers
from conftest import ROOT, TEST_REDIS_URL, free_port

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_has_the_shared_stack_and_no_obsolete_version_key():
    assert "version" not in COMPOSE
    assert set(SERVICES) == {"redis", "simulator", "worker", "beat", "flower"}


def test_redis_is_pinned_persistent_and_healthchecked():
    redis = SERVICES["redis"]
    assert ":" in redis["image"] and not redis["image"].endswith(":latest")
    assert "--appendonly" in redis["command"] and "noeviction" in redis["command"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_workers_wait_for_healthy_redis_and_answer_inspect_ping():
    worker = SERVICES["worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    assert " ".join(worker["command"]) == workers.WORKER_COMMAND  # the command make worker runs
    assert "container_name" not in worker  # a fixed name would forbid --scale


def test_containers_use_service_names_not_localhost():
    for name in ("worker", "beat", "flower", "simulator"):
        environment = SERVICES[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert "simulator:8100" in environment["OPENAI_BASE_URL"]


def test_the_image_installs_the_same_requirements_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert "FROM python:3.11" in dockerfile


def local_command(service: str, port: int | None = None) -> list[str]:
    """The service's container command, run with this environment's Python."""
    command = list(SERVICES[service]["command"])
    if command[0] == "celery":
        command = [sys.executable, "-m", *command]
    elif command[0] == "python":
        command[0] = sys.executable
    if port is not None:
        command = [c.replace("8100", str(port)).replace("5555", str(port)) for c in command]
    return [c.replace("/tmp/celerybeat-schedule", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"beat-{port}"))
            for c in command]


def answers_http(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.3)
    return False


@pytest.mark.parametrize("service, path", [("simulator", "/v1/models"), ("flower", "/healthcheck")])
def test_http_services_start_and_answer(service, path, private_redis):
    port = free_port()
    command = [c.replace("0.0.0.0", "127.0.0.1") for c in local_command(service, port)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert answers_http(f"http://127.0.0.1:{port}{path}", time.monotonic() + 20)
    finally:
        process.terminate()
        process.wait(10)


def test_beat_starts_and_keeps_running(private_redis, tmp_path):
    command = local_command("beat", free_port())
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(4)
        assert process.poll() is None, process.stdout.read()
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "beat: Starting" in output
