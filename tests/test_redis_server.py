"""Redis for the course: found, started on localhost when missing, clear about what is wrong."""
import shutil

import pytest

from conftest import TEST_REDIS_PORT, TEST_REDIS_URL, free_port
from course.jobs import redis_server, workers
from course.console import Stop


def test_ensure_redis_starts_an_embedded_server_with_appendonly_on():
    url = f"redis://localhost:{free_port()}/0"
    try:
        client = redis_server.ensure_redis(url)
        assert client.ping()
        assert redis_server.persistence_on(client) is True
        assert redis_server.started_by_course(url)
    finally:
        assert redis_server.stop_redis(url)
        shutil.rmtree(redis_server.data_folder(int(url.rsplit(":", 1)[1].split("/")[0])), ignore_errors=True)
    assert redis_server.redis_problem(url) is not None  # stopped: nothing answers any more


def test_an_unreachable_remote_redis_stops_with_the_password_masked():
    with pytest.raises(Stop) as stop:
        redis_server.ensure_redis("redis://:hunter2@127.0.0.2:6379/0")
    message = str(stop.value)
    assert "redis://:***@127.0.0.2:6379/0" in message
    assert "hunter2" not in message


def test_a_wrong_password_stops_with_a_clear_message(private_redis):
    with pytest.raises(Stop) as stop:
        redis_server.ensure_redis(f"redis://learner:wrong@127.0.0.1:{TEST_REDIS_PORT}/0")
    assert "refused the password" in str(stop.value)
    assert "wrong" not in str(stop.value)


def test_a_database_number_out_of_range_stops_with_a_clear_message(private_redis):
    with pytest.raises(Stop, match="no database with that number"):
        redis_server.ensure_redis(f"redis://127.0.0.1:{TEST_REDIS_PORT}/99")


def test_something_that_is_not_redis_is_named_as_such(simulator):
    port = simulator.base_url.split(":")[2].split("/")[0]
    with pytest.raises(Stop, match="is not Redis"):
        redis_server.ensure_redis(f"redis://127.0.0.1:{port}/0")


def test_queued_tasks_survive_a_redis_restart_and_then_run(private_redis, simulator, monkeypatch):
    from course.jobs import tasks
    from course.jobs.celery_app import app

    assert not workers.workers_answering(timeout=0.5)
    app.control.purge()
    client = redis_server.connect()
    results = [tasks.add.delay(n, n) for n in range(5)]
    assert client.llen("default") == 5

    redis_server.stop_redis(TEST_REDIS_URL, private_redis)
    redis_server.start_redis(TEST_REDIS_PORT, private_redis)  # same folder: it reads its append-only file back
    assert client.llen("default") == 5

    monkeypatch.setenv("OPENAI_BASE_URL", simulator.base_url)
    worker = workers.ensure_worker()
    try:
        assert sorted(result.get(timeout=30) for result in results) == [0, 2, 4, 6, 8]
    finally:
        worker.stop()


def test_the_embedded_server_is_bounded_and_never_evicts(private_redis):
    used, limit, policy = redis_server.memory(redis_server.connect())
    assert limit == 256 * 1024 * 1024 and policy == "noeviction"  # REDIS_MAXMEMORY's default, 256mb
    assert 0 < used < limit
