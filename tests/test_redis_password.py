"""The redis-server the course starts asks for the password REDIS_URL carries, and the password
never appears on a command line (where `ps` shows it to every user of the machine)."""
import shutil
import subprocess
from urllib.parse import quote

import pytest
import redis

from course.jobs import redis_server
from conftest import free_port

PASSWORD = 'pa ss"w\\ord%é'  # quotes, a backslash, a space, a percent sign and a non-ASCII letter


@pytest.fixture
def launched(monkeypatch):
    """Every command start_redis runs, recorded on its way to the real subprocess.run."""
    commands, real_run = [], subprocess.run

    def recording_run(command, *args, **kwargs):
        commands.append(list(command))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(redis_server.subprocess, "run", recording_run)
    return commands


def test_a_started_server_requires_the_password_and_no_command_line_shows_it(tmp_path, launched):
    port = free_port()
    redis_server.start_redis(port, tmp_path, password=PASSWORD)
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis(port=port, password=PASSWORD).ping()
        wrong = f"redis://:wrong@127.0.0.1:{port}/0"
        assert redis_server.redis_problem(wrong).startswith("Redis at redis://:***@127.0.0.1")
        assert "refused the password" in redis_server.redis_problem(wrong)
        pid = int((tmp_path / "redis.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            assert PASSWORD.encode() not in cmdline.read()
    finally:
        redis_server.stop_redis(f"redis://127.0.0.1:{port}/0", tmp_path)
    assert launched and all(PASSWORD not in " ".join(command) for command in launched)
    assert (tmp_path / "password.conf").stat().st_mode & 0o777 == 0o600


def test_ensure_redis_starts_it_with_the_password_in_redis_url(launched):
    port = free_port()
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    folder = redis_server.data_folder(port)
    try:
        client = redis_server.ensure_redis(url)
        assert client.ping()
        assert redis_server.redis_problem(f"redis://127.0.0.1:{port}/0") is not None  # no password: refused
    finally:
        redis_server.stop_redis(url, folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_without_a_password_the_server_is_open_and_an_old_password_file_is_gone(tmp_path):
    (tmp_path / "password.conf").write_text('requirepass "old"\n')
    port = free_port()
    redis_server.start_redis(port, tmp_path)
    try:
        assert redis.Redis(port=port).ping()
    finally:
        redis_server.stop_redis(f"redis://127.0.0.1:{port}/0", tmp_path)
    assert not (tmp_path / "password.conf").exists()
