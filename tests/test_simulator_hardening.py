"""The simulator stays up and small whatever a client sends: size limits, header checks,
JSON errors only, bounded memory, a stop that never hangs, admin routes behind a key."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai import OpenAI

from course.llm.simulator.launcher import READY, start


@pytest.fixture(scope="module")
def sim():
    with start(speed=50, extra_args=["--max-body-mb", "1"]) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim):
    with OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=10) as c:
        yield c


def address(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    return host, int(port)


def read_response(conn: socket.socket) -> tuple[int, dict]:
    conn.settimeout(5)  # an answer that never comes fails the test instead of hanging it
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(65536)
    return int(head[9:12]), json.loads(body)


def admin(url, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data=data, headers=headers or {})) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read())


def test_a_huge_body_is_refused_413_before_it_is_read_and_others_go_on(sim, client):
    with socket.create_connection(address(sim)) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 104857600\r\n\r\n{\"model\":")  # 100 MiB announced, 9 bytes sent
        began = time.monotonic()
        status, body = read_response(conn)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert time.monotonic() - began < 1
    began = time.monotonic()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"x-sim-latency": "0"})
    assert time.monotonic() - began < 1


def test_a_chunked_body_over_the_limit_is_refused_413(sim):
    with socket.create_connection(address(sim)) as conn:
        conn.settimeout(5)
        conn.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        status = None
        try:
            for _ in range(40):  # 2.5 MiB, over the 1 MiB limit
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: fine
        status, body = read_response(conn)
    assert status == 413 and body["error"]["type"] == "invalid_request_error"


def test_a_body_under_the_limit_is_served(client):
    text = "word " * 150_000  # 750 KB, under the 1 MiB limit
    reply = client.embeddings.create(model="text-embedding-3-small", input=text[:30_000],
                                     extra_headers={"x-sim-latency": "0"})
    assert reply.data[0].embedding


@pytest.mark.parametrize("header, value", [
    ("x-sim-latency", "inf"), ("x-sim-latency", "nan"), ("x-sim-latency", "-1"), ("x-sim-latency", "1e9"),
    ("x-sim-rpm", "abc"), ("x-sim-rpm", "inf"), ("x-sim-error-rate", "2"), ("x-sim-fail-first", "1.5"),
    ("x-sim-fault", "explode"),
])
def test_non_finite_or_absurd_header_values_are_a_400(client, header, value):
    began = time.monotonic()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={header: value})
    assert caught.value.body["param"] == header
    assert time.monotonic() - began < 1


def test_sigterm_stops_the_server_even_with_requests_in_flight():
    running = start(speed=50)
    with OpenAI(base_url=running.base_url, api_key="x", max_retries=0, timeout=30) as c:
        import threading

        for headers in ({"x-sim-latency": "500"}, {"x-sim-fault": "hang"}):
            threading.Thread(target=lambda h=headers: _swallow(lambda: c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=h)),
                daemon=True).start()
        time.sleep(0.5)
        began = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=10)
    assert time.monotonic() - began < 4.5  # not the launcher's SIGKILL after 5 s
    assert running.process.returncode == 0


def _swallow(call):
    try:
        call()
    except openai.APIError:
        pass


def test_an_unexpected_error_is_answered_in_openai_json():
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from course.llm.simulator.app import Config, create_app

    app = create_app(Config())

    async def broken(request):
        raise RuntimeError("a bug")

    app.app.router.routes.append(Route("/v1/broken", broken, methods=["GET"]))
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/v1/broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "server_error"
    assert response.headers["x-request-id"].startswith("req_")


def test_rate_limit_buckets_and_fail_keys_stay_bounded(sim, client):
    for i in range(1300):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-sim-rpm": str(1000 + i), "x-sim-latency": "0",
                                                          "x-sim-fail-first": "0", "x-sim-fail-key": f"k{i}"})
        except openai.RateLimitError:
            pass
    _, stats = admin(sim.url, "/sim/stats")
    assert stats["buckets"] <= 1024


def test_admin_routes_need_the_admin_key_when_one_is_set():
    with start(speed=50, extra_args=["--admin-key", "adm-secret"]) as locked:
        for path, body in (("/sim/stats", None), ("/sim/outage", {"seconds": 0}), ("/sim/reset", {})):
            assert admin(locked.url, path, body)[0] == 401
            assert admin(locked.url, path, body, {"x-sim-admin-key": "wrong"})[0] == 401
            assert admin(locked.url, path, body, {"x-sim-admin-key": "adm-secret"})[0] == 200
            assert admin(locked.url, path, body, {"Authorization": "Bearer adm-secret"})[0] == 200
        with OpenAI(base_url=locked.base_url, api_key="any", max_retries=0) as c:  # /v1 needs no admin key
            assert c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_admin_routes_are_open_without_an_admin_key(sim):
    assert admin(sim.url, "/sim/stats")[0] == 200


def test_the_simulator_binds_loopback_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "SIM_HOST"}
    env["COURSE_ENV_FILE"] = ""  # no .env either
    process = subprocess.Popen([sys.executable, "-m", "course.llm.simulator", "--port", "0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert line.startswith(READY + "http://127.0.0.1:")
