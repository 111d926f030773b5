"""`python -m course.doctor` says what is there and what is missing, and exits 1 when it matters."""
import subprocess
import sys

from conftest import ROOT, TEST_REDIS_URL, free_port, lesson_env
from course.jobs import redis_server


def doctor(**env):
    return subprocess.run([sys.executable, "-m", "course.doctor"], cwd=ROOT, env=lesson_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_doctor_names_a_missing_redis_and_exits_1():
    process = doctor(REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    assert process.returncode == 1
    assert "✗ Redis" in process.stdout and "redis://:***@127.0.0.1:1/0" in process.stdout
    assert "hunter2" not in process.stdout and "Traceback" not in process.stdout + process.stderr
    assert "PENDING" in process.stdout


def test_doctor_sees_redis_its_memory_the_worker_its_queues_and_the_llm(worker, simulator):
    process = doctor(REDIS_URL=TEST_REDIS_URL, OPENAI_BASE_URL=simulator.base_url)
    assert process.returncode == 0, process.stdout + process.stderr
    for line in ("✓ Redis:", "✓ Redis persistence", "✓ Redis memory", "of 256 MiB", "Dead letters",
                 "✓ Worker:", "✓ Worker queues", "✓ Course tasks", "✓ Task events", "✓ LLM"):
        assert line in process.stdout, process.stdout
    said = " ".join(process.stdout.split())
    assert "Task events: off, the course's default" in said and "Flower turns them on" in said
    assert "only after the visibility timeout, 300 s (CELERY_VISIBILITY_TIMEOUT), plus up to 10 s" in said


def test_a_redis_that_evicts_keys_is_an_error(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_server.start_redis(port, tmp_path)
    try:
        redis_server.connect(url).config_set("maxmemory-policy", "allkeys-lru")
        process = doctor(REDIS_URL=url)
    finally:
        redis_server.stop_redis(url, tmp_path)
    assert process.returncode == 1
    said = " ".join(process.stdout.split())
    assert "✗ Redis memory: maxmemory-policy allkeys-lru" in said
    assert "redis-cli config set maxmemory-policy noeviction" in said
