"""docker-compose.yml, checked without a Docker engine: its shape, what keeps it safe by default,
and every service's command started here, outside Docker, the way the container would start it."""
import base64
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from course.jobs import redis_server, workers
from conftest import ROOT, TEST_REDIS_URL, free_port

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
COURSE_SERVICES = ("simulator", "worker", "beat", "flower", "api")


def required(name: str) -> re.Pattern:
    """${NAME:?message}: compose refuses to start while NAME is unset or empty."""
    return re.compile(r"\$\{" + name + r":\?[^}]+\}")


def test_compose_has_the_shared_stack_and_no_obsolete_version_key():
    assert "version" not in COMPOSE
    assert set(SERVICES) == {"redis", "simulator", "worker", "beat", "flower", "api", "prometheus"}


def test_prometheus_is_optional_pinned_and_scrapes_every_worker_and_flower():
    prometheus = SERVICES["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]  # docker compose up -d leaves it out
    assert ":" in prometheus["image"] and not prometheus["image"].endswith(":latest")
    source, _, target = next(v for v in prometheus["volumes"] if v.startswith("./")).partition(":")
    assert target.startswith("/etc/prometheus/prometheus.yml") and target.endswith(":ro")
    config = yaml.safe_load((ROOT / source).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers_job = jobs["celery-workers"]["dns_sd_configs"][0]
    # Every replica of the worker service, on the port its metrics listen on by default.
    assert workers_job["names"] == ["worker"] and workers_job["type"] == "A"
    assert workers_job["port"] == settings_default("METRICS_PORT")
    assert jobs["flower"]["static_configs"][0]["targets"] == ["flower:5555"]
    # Inside the stack a worker listens beyond its own container, and publishes nothing.
    assert SERVICES["worker"]["environment"]["METRICS_HOST"] == "0.0.0.0"
    assert not SERVICES["worker"].get("ports")


def settings_default(name: str) -> int:
    """The default a setting has in course/settings.py (`_number("NAME", default)`)."""
    source = (ROOT / "modules/course/settings.py").read_text()
    return int(float(re.search(rf'_number\("{name}", ([\d.]+)\)', source).group(1)))


def test_redis_is_pinned_persistent_and_healthchecked():
    redis_service = SERVICES["redis"]
    assert ":" in redis_service["image"] and not redis_service["image"].endswith(":latest")
    script = redis_service["command"][-1]
    assert "--appendonly yes" in script and "noeviction" in script
    assert "--maxmemory $${REDIS_MAXMEMORY:-256mb}" in script  # bounded, as the embedded Redis
    assert "redis-cli" in " ".join(redis_service["healthcheck"]["test"])


def test_every_published_port_is_on_127_0_0_1_only():
    published = {name: service.get("ports", []) for name, service in SERVICES.items()}
    assert published == {"redis": ["127.0.0.1:6379:6379"], "simulator": ["127.0.0.1:8100:8100"],
                         "flower": ["127.0.0.1:5555:5555"], "api": ["127.0.0.1:8000:8000"], "worker": [],
                         "beat": [], "prometheus": ["127.0.0.1:9090:9090"]}


def test_redis_requires_a_password_that_no_command_line_shows():
    redis_service = SERVICES["redis"]
    assert required("REDIS_PASSWORD").fullmatch(redis_service["environment"]["REDIS_PASSWORD"])
    script = redis_service["command"][-1]
    # The password goes in on stdin ("-" as the last argument), read by the shell from the environment.
    assert re.search(r"redis-server [^\n]* -\s*<<EOF\nrequirepass \"\$\$REDIS_PASSWORD\"\nEOF", script)
    assert "--requirepass" not in script
    assert "REDISCLI_AUTH" in redis_service["healthcheck"]["test"][-1]  # redis-cli -a would show it


def test_containers_reach_redis_by_name_with_the_password():
    for name in COURSE_SERVICES:
        environment = SERVICES[name]["environment"]
        url = environment["REDIS_URL"]
        assert url.startswith("redis://:") and url.endswith("@redis:6379/0")
        assert required("REDIS_PASSWORD").fullmatch(url[len("redis://:"):-len("@redis:6379/0")])
        assert "simulator:8100" in environment["OPENAI_BASE_URL"]


def test_the_simulator_wants_an_admin_key_and_flower_a_login():
    assert required("SIM_ADMIN_KEY").fullmatch(SERVICES["simulator"]["environment"]["SIM_ADMIN_KEY"])
    assert required("FLOWER_BASIC_AUTH").fullmatch(SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"])
    assert "--enable-events" in SERVICES["flower"]["command"]


def test_workers_wait_for_healthy_redis_and_answer_inspect_ping():
    worker = SERVICES["worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    assert " ".join(worker["command"]) == workers.WORKER_COMMAND  # the command make worker runs
    assert "container_name" not in worker  # a fixed name would forbid --scale


def test_the_image_installs_the_same_requirements_file_and_its_user_owns_the_data_folder():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert "FROM python:3.11" in dockerfile
    # The services run as `course`; the course writes .course-data/ (beat's schedule, the webhook secret).
    assert re.search(r"chown course \.course-data\n(?:.*\n)*USER course", dockerfile)


def test_make_flower_listens_on_127_0_0_1_and_keeps_task_events_on():
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"^flower:.*\n\t(.*)$", makefile, re.MULTILINE).group(1)
    assert "--address=127.0.0.1" in command and "--enable-events" in command


# ---- the commands, started here as the containers would start them --------------------


def local_command(service: str, port: int | None = None) -> list[str]:
    """The service's container command, run with this environment's Python, on 127.0.0.1."""
    command = list(SERVICES[service]["command"])
    if command[0] == "celery":
        command = [sys.executable, "-m", *command]
    elif command[0] == "python":
        command[0] = sys.executable
    if port is not None:
        command = [c.replace("8100", str(port)).replace("5555", str(port)) for c in command]
    return [c.replace("0.0.0.0", "127.0.0.1") for c in command]


def http_status(url: str, deadline: float, headers: dict | None = None, method: str = "GET") -> int | None:
    """The status `url` answers with, trying until `deadline`; None if nothing answered."""
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.3)
    return None


def started(service: str, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(local_command(service, port), cwd=ROOT,
                            env={**os.environ, "REDIS_URL": TEST_REDIS_URL, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses something listens on at `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_the_simulator_answers_and_its_fault_switches_want_the_admin_key(private_redis):
    port, key = free_port(), "admin-key-for-this-test"
    process = started("simulator", port, SIM_ADMIN_KEY=key)
    try:
        base = f"http://127.0.0.1:{port}"
        assert http_status(f"{base}/v1/models", time.monotonic() + 20) == 200
        assert http_status(f"{base}/sim/reset", time.monotonic() + 5, method="POST") == 401
        assert http_status(f"{base}/sim/reset", time.monotonic() + 5, {"x-sim-admin-key": "wrong"}, "POST") == 401
        assert http_status(f"{base}/sim/reset", time.monotonic() + 5, {"x-sim-admin-key": key}, "POST") == 200
    finally:
        process.terminate()
        process.wait(10)


def test_flower_answers_its_healthcheck_and_shows_tasks_only_after_login(private_redis):
    port, login = free_port(), "course:flower-password-for-this-test"
    process = started("flower", port, FLOWER_BASIC_AUTH=login)
    try:
        base = f"http://127.0.0.1:{port}"
        assert http_status(f"{base}/healthcheck", time.monotonic() + 30) == 200
        assert http_status(f"{base}/tasks", time.monotonic() + 5) == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"course:wrong").decode()}
        assert http_status(f"{base}/tasks", time.monotonic() + 5, wrong) == 401
        right = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        assert http_status(f"{base}/tasks", time.monotonic() + 5, right) == 200
    finally:
        process.terminate()
        process.wait(10)


def test_make_flower_listens_on_loopback_only(private_redis):
    port = free_port()
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"^flower:.*\n\t(.*)$", makefile, re.MULTILINE).group(1).split()
    command = [sys.executable, "-m", "celery", *command[1:]]  # $(BIN)/celery -> this Python's celery
    command = [c.replace("5555", str(port)) for c in command]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert http_status(f"http://127.0.0.1:{port}/healthcheck", time.monotonic() + 30) == 200
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(10)


def test_the_api_waits_for_healthy_redis_and_its_command_answers_its_healthcheck(private_redis):
    api = SERVICES["api"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    health_url = re.search(r"urlopen\('([^']+)'\)", api["healthcheck"]["test"][-1]).group(1)
    port = free_port()
    command = [sys.executable if c == "python" else c.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port))
               for c in api["command"]]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert http_status(health_url.replace("8000", str(port)), time.monotonic() + 30) == 200
        assert http_status(f"http://127.0.0.1:{port}/jobs", time.monotonic() + 5) == 401  # callers need a token
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(10)


def test_redis_started_by_the_compose_script_wants_the_password(tmp_path):
    """The container's shell script, with this machine's redis-server in place of the image's entrypoint."""
    binary = redis_server.redis_binary()
    port, password = free_port(), "a-password-for-this-test"
    script = SERVICES["redis"]["command"][-1].replace("$$", "$")  # what compose hands the shell
    script = script.replace("docker-entrypoint.sh redis-server",
                            f"{binary} --port {port} --bind 127.0.0.1 --dir {tmp_path} --daemonize yes "
                            f"--pidfile {tmp_path}/redis.pid --logfile {tmp_path}/redis.log")
    subprocess.run(["sh", "-c", script], env={**os.environ, "REDIS_PASSWORD": password}, check=True, timeout=20)
    try:
        deadline = time.monotonic() + 10
        while redis_server.redis_problem(f"redis://:{password}@127.0.0.1:{port}/0") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redis.Redis(port=port, password=password).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis(port=port, password=password).config_get("appendonly") == {"appendonly": "yes"}
    finally:
        redis_server.stop_redis(f"redis://127.0.0.1:{port}/0", tmp_path)


def test_beat_starts_and_keeps_running(private_redis, tmp_path):
    command = [c.replace("/tmp/celerybeat-schedule", str(tmp_path / "celerybeat-schedule"))
               for c in local_command("beat")]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(4)
        assert process.poll() is None, process.stdout.read()
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "beat: Starting" in output
