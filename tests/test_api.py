"""The job API over real HTTP: a uvicorn process of its own (python -m course.api), the tests'
Redis, a real worker and a simulated LLM that takes a fixed 0.1 s per call, so a job of n texts
takes about n tenths of a second. Every endpoint, every error code, ownership, the event stream
and its resumption, a restart that keeps the jobs, and what never reaches the log."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

import httpx
import pytest

from course.api.client import events
from course.api.server import RunningApi
from course.samples import REVIEWS

TOKENS = {"alice": "alice-token-for-tests", "bob": "bob-token-for-tests",
          "carol": "carol-token-for-tests", "dave": "dave-token-for-tests"}
LIMITS = {"API_MAX_TEXTS": "8", "API_MAX_TEXT_CHARS": "300", "API_MAX_TOTAL_CHARS": "1000", "API_MAX_ACTIVE": "3"}
CALL_SECONDS = 0.1  # what every LLM call takes in this file


def api_env(**more: str) -> dict[str, str]:
    return {"API_TOKENS": ",".join(f"{owner}:{token}" for owner, token in TOKENS.items()), **LIMITS, **more}


@pytest.fixture(scope="module")
def simulator():
    """This module's simulated LLM: every call takes CALL_SECONDS, so jobs last long enough to watch."""
    from course.llm.simulator import launcher

    with launcher.start(latency=CALL_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def api(private_redis, tmp_path_factory):
    running = RunningApi(env=api_env(), log=tmp_path_factory.mktemp("api") / "api.log").start()
    yield running
    running.close()


def client(api: RunningApi, owner: str = "alice") -> httpx.Client:
    return api.caller(owner)


def submit(api: RunningApi, owner: str = "alice", kind: str = "sentiment", texts=None) -> httpx.Response:
    answer = client(api, owner).post("/jobs", json={"kind": kind, "texts": texts or REVIEWS[:2]})
    assert answer.status_code == 202, answer.text
    return answer


def final(api: RunningApi, job_id: str, owner: str = "alice", timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client(api, owner).get(f"/jobs/{job_id}")
        if "retry-after" not in answer.headers:
            return answer.json()
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def is_problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# ---- submit, status, result ----------------------------------------------------------------


def test_a_job_is_answered_202_with_its_location_and_ends_with_one_output_per_text(api, worker):
    answer = submit(api, texts=[REVIEWS[0], REVIEWS[1], REVIEWS[3]])
    job = answer.json()
    assert answer.headers["location"] == f"/jobs/{job['id']}" == job["links"]["self"]
    assert job["status"] == "queued" and job["progress"] == {"current": 0, "total": 3}
    assert job["result"] is None and job["error"] is None

    done = final(api, job["id"])
    assert done["status"] == "succeeded" and done["progress"] == {"current": 3, "total": 3}
    assert [label.lower() for label in done["result"]] == ["positive", "negative", "positive"]
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]


@pytest.mark.parametrize("kind", ["summary", "keywords", "embed"])
def test_every_kind_runs_over_every_text(api, worker, kind):
    done = final(api, submit(api, kind=kind, texts=REVIEWS[:2]).json()["id"])
    assert done["status"] == "succeeded" and len(done["result"]) == 2
    if kind == "embed":
        assert all(output["dimensions"] == 1536 and len(output["first"]) == 3 for output in done["result"])
    else:
        assert all(isinstance(output, str) and output for output in done["result"])


def test_get_says_retry_after_while_the_job_is_unfinished_and_not_after(api, worker):
    job = submit(api, texts=REVIEWS[:5]).json()
    running = client(api).get(f"/jobs/{job['id']}")
    assert running.json()["status"] in ("queued", "running")
    assert running.headers["retry-after"] == "1"
    final(api, job["id"])
    assert "retry-after" not in client(api).get(f"/jobs/{job['id']}").headers


def test_an_unknown_id_is_404_never_pending(api):
    body = is_problem(client(api).get(f"/jobs/{uuid.uuid4()}"), 404)
    assert "No job" in body["detail"]
    is_problem(client(api).delete(f"/jobs/{uuid.uuid4()}"), 404)
    is_problem(client(api).get(f"/jobs/{'x' * 80}"), 422)  # an id longer than any job id


# ---- who may see what -----------------------------------------------------------------------


def test_another_callers_job_is_404_to_them_and_stays_untouched(api, worker):
    job = submit(api, texts=REVIEWS[:4]).json()
    bob, unknown = client(api, "bob"), str(uuid.uuid4())
    as_unknown = is_problem(bob.get(f"/jobs/{unknown}"), 404)["detail"].replace(unknown, "ID")
    for answer in (bob.get(f"/jobs/{job['id']}"), bob.delete(f"/jobs/{job['id']}"),
                   bob.get(f"/jobs/{job['id']}/events")):
        assert is_problem(answer, 404)["detail"].replace(job["id"], "ID") == as_unknown  # no hint it exists
    assert job["id"] not in json.dumps(bob.get("/jobs").json())
    assert final(api, job["id"])["status"] == "succeeded"  # bob's DELETE canceled nothing


def test_no_token_or_a_wrong_one_is_401_with_a_bearer_challenge(api):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxpY2U6eA=="},
                    {"Authorization": f"Bearer {TOKENS['alice']}x"}):
        for method, path in (("GET", "/jobs"), ("POST", "/jobs"), ("GET", f"/jobs/{uuid.uuid4()}"),
                             ("DELETE", f"/jobs/{uuid.uuid4()}"), ("GET", "/audit")):
            answer = httpx.request(method, api.url + path, headers=headers, json={"kind": "summary", "texts": ["x"]})
            assert is_problem(answer, 401), (method, path, headers)
            assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_list_shows_only_your_jobs_newest_first_a_page_at_a_time(api, worker):
    ids = [submit(api, "carol", texts=[text]).json()["id"] for text in REVIEWS[:3]]
    first = client(api, "carol").get("/jobs", params={"limit": 2}).json()
    assert first["owner"] == "carol"
    assert [job["id"] for job in first["jobs"]] == ids[:0:-1]  # the two newest, newest first
    second = client(api, "carol").get(first["next"]).json()
    assert [job["id"] for job in second["jobs"]] == ids[:1] and second["next"] is None
    assert not set(ids) & {job["id"] for job in client(api, "bob").get("/jobs").json()["jobs"]}
    is_problem(client(api, "carol").get("/jobs", params={"limit": 0}), 422)
    is_problem(client(api, "carol").get("/jobs", params={"limit": 101}), 422)


# ---- cancel ---------------------------------------------------------------------------------


def test_cancel_stops_a_running_job_before_its_next_text_and_a_second_cancel_is_409(api, worker):
    job = submit(api, texts=REVIEWS[:8]).json()
    for event in events(client(api), job["links"]["events"]):
        if event["data"]["progress"]["current"] >= 2:
            break
    canceled = client(api).delete(f"/jobs/{job['id']}")
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
    reached = canceled.json()["progress"]["current"]
    time.sleep(4 * CALL_SECONDS)  # the text in progress ends; no other starts
    later = client(api).get(f"/jobs/{job['id']}").json()
    assert later["status"] == "canceled" and later["progress"]["current"] == reached < 8
    assert later["result"] is None and "retry-after" not in client(api).get(f"/jobs/{job['id']}").headers
    body = is_problem(client(api).delete(f"/jobs/{job['id']}"), 409)
    assert "already finished (canceled)" in body["detail"]
    # The stream ends with the cancellation, and the worker is free for the next job.
    assert [e["event"] for e in events(client(api), job["links"]["events"])] == ["canceled"]
    assert final(api, submit(api, texts=REVIEWS[:1]).json()["id"])["status"] == "succeeded"


def test_cancelling_a_finished_job_is_409(api, worker):
    job = submit(api, texts=REVIEWS[:1]).json()
    assert final(api, job["id"])["status"] == "succeeded"
    assert "already finished (succeeded)" in is_problem(client(api).delete(f"/jobs/{job['id']}"), 409)["detail"]


# ---- the event stream -----------------------------------------------------------------------


def test_the_stream_sends_the_current_state_then_every_step_then_ends(api, worker):
    job = submit(api, kind="keywords", texts=REVIEWS[:4]).json()
    seen = list(events(client(api), job["links"]["events"]))
    ids = [event["id"] for event in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # numbered 1, 2, 3 ... with no gap
    assert [e["event"] for e in seen[:-1]] == ["progress"] * (len(seen) - 1) and seen[-1]["event"] == "done"
    done = [e["data"]["progress"]["current"] for e in seen]
    assert done == sorted(done) and set(range(1, 5)) <= set(done)  # each text's step was sent
    assert seen[-1]["data"]["result"] == final(api, job["id"])["result"]


def test_a_reconnection_with_last_event_id_misses_nothing_and_repeats_nothing(api, worker):
    job = submit(api, texts=REVIEWS[:6]).json()
    stream = events(client(api), job["links"]["events"])
    first = [next(stream), next(stream)]
    stream.close()  # the connection drops
    time.sleep(3 * CALL_SECONDS)  # the job goes on meanwhile
    rest = list(events(client(api), job["links"]["events"], last_event_id=first[-1]["id"]))
    ids = [event["id"] for event in first + rest]
    assert ids == list(range(ids[0], ids[-1] + 1)) and rest[-1]["event"] == "done"
    # Once the client has seen the end, a reconnection is told to stop: 204.
    again = client(api).get(job["links"]["events"], headers={"Last-Event-ID": str(ids[-1])}, timeout=5)
    assert again.status_code == 204 and not again.content
    is_problem(client(api).get(job["links"]["events"], headers={"Last-Event-ID": "seven"}), 400)
    # An id the job never had starts afresh: the current state, here the end.
    assert [e["event"] for e in events(client(api), job["links"]["events"], last_event_id=999)] == ["done"]


def test_a_stream_token_opens_its_own_job_only_and_not_for_long(api, worker):
    one, other = submit(api).json(), submit(api).json()
    token = one["links"]["events"].partition("?token=")[2]
    assert is_problem(httpx.get(f"{api.url}/jobs/{other['id']}/events?token={token}"), 401)
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")  # one character off
    assert is_problem(httpx.get(f"{api.url}/jobs/{one['id']}/events?token={tampered}"), 401)
    expired = int(time.time()) - 1
    signature = hmac.new(TOKENS["alice"].encode(), f"{one['id']}.{expired}".encode(), hashlib.sha256).hexdigest()[:32]
    assert is_problem(httpx.get(f"{api.url}/jobs/{one['id']}/events?token={expired}.{signature}"), 401)
    assert httpx.get(f"{api.url}{one['links']['events']}").status_code == 200  # the link itself works, no header
    assert is_problem(httpx.get(f"{api.url}/jobs/{one['id']}/events"), 401)  # neither token nor bearer


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("body, words", [
    ({"kind": "summary", "texts": ["hi"] * 9}, ["at most 8 texts", "API_MAX_TEXTS", "has 9"]),
    ({"kind": "summary", "texts": ["x" * 301]}, ["301 characters", "limit is 300", "API_MAX_TEXT_CHARS"]),
    ({"kind": "summary", "texts": ["x" * 250] * 5}, ["1,250 characters in all", "limit is 1,000", "API_MAX_TOTAL_CHARS"]),
    ({"kind": "summary", "texts": []}, ["at least one text"]),
    ({"kind": "summary", "texts": ["fine", "  "]}, ["text 2 is empty"]),
    ({"kind": "translate", "texts": ["hi"]}, ["kind", "'sentiment', 'summary', 'keywords' or 'embed'"]),
    ({"kind": "summary", "texts": ["hi"], "url": "http://127.0.0.1:1/x"}, ["url", "not permitted"]),
    ({"texts": ["hi"]}, ["kind", "Field required"]),
    ({"kind": "summary", "texts": "hi"}, ["texts", "valid list"]),
    ([1, 2], ["JSON object", "Content-Type: application/json"]),
])
def test_input_past_a_limit_or_malformed_is_422_with_a_message_that_says_why(api, body, words):
    answer = client(api).post("/jobs", json=body)
    detail = is_problem(answer, 422)["detail"]
    assert all(word in detail for word in words), detail
    assert answer.json()["errors"] if isinstance(body, dict) else True


def test_malformed_json_is_400_and_an_oversized_body_413_before_it_is_read(api):
    broken = client(api).post("/jobs", content=b'{"kind": "summary", "texts": [', headers={"Content-Type": "application/json"})
    assert "not valid JSON" in is_problem(broken, 400)["detail"]
    huge = b'{"kind": "summary", "texts": ["' + b"x" * 200_000 + b'"]}'
    declared = client(api).post("/jobs", content=huge, headers={"Content-Type": "application/json"})
    assert "larger than" in is_problem(declared, 413)["detail"]

    def chunks():  # no Content-Length: the API counts what arrives
        for _ in range(50):
            yield b"x" * 10_000

    streamed = client(api).post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    is_problem(streamed, 413)


def test_a_caller_over_its_share_of_unfinished_jobs_gets_429_with_retry_after(api, worker):
    held = [submit(api, "dave", texts=REVIEWS[:8]).json() for _ in range(3)]
    refused = client(api, "dave").post("/jobs", json={"kind": "summary", "texts": ["one more"]})
    body = is_problem(refused, 429)
    assert "3 unfinished jobs" in body["detail"] and "API_MAX_ACTIVE" in body["detail"]
    assert int(refused.headers["retry-after"]) > 0
    assert client(api, "bob").post("/jobs", json={"kind": "summary", "texts": ["mine"]}).status_code == 202
    for job in held:
        client(api, "dave").delete(f"/jobs/{job['id']}")
    assert submit(api, "dave", texts=["room again"]).status_code == 202  # a canceled job frees its place


def test_no_url_a_caller_sends_is_ever_fetched(api, worker):
    hits = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/secret"
    try:
        job = submit(api, kind="summary", texts=[f"Please fetch {url} and summarise it.", url]).json()
        assert final(api, job["id"])["status"] == "succeeded"
        client(api).post("/jobs", json={"kind": "summary", "texts": ["x"], "url": url, "webhook": url})
        time.sleep(0.3)
    finally:
        server.shutdown()
    assert hits == []


# ---- what else it serves --------------------------------------------------------------------


def test_health_lists_the_kinds_the_limits_and_that_a_worker_answers(api, worker):
    deadline = time.monotonic() + 10
    while (health := httpx.get(f"{api.url}/health").json())["worker"] is not True and time.monotonic() < deadline:
        time.sleep(0.2)
    assert health["worker"] is True and health["kinds"] == ["sentiment", "summary", "keywords", "embed"]
    assert health["limits"] == {"texts": 8, "text_chars": 300, "total_chars": 1000, "active_per_caller": 3}


def test_the_docs_are_served_without_a_cdn_and_list_every_route(api):
    docs = httpx.get(f"{api.url}/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    script = docs.text.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/") and httpx.get(f"{api.url}{script}").status_code == 200
    paths = httpx.get(f"{api.url}/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/events", "/audit", "/health"} <= set(paths)
    assert {"get", "post"} <= set(paths["/jobs"]) and {"get", "delete"} <= set(paths["/jobs/{job_id}"])


def test_the_page_and_its_files_come_with_a_policy_that_allows_no_inline_script(api):
    page = httpx.get(f"{api.url}/")
    assert page.status_code == 200 and "<progress" in page.text and "<script src=" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"  # an events link never leaks in a Referer
    script = httpx.get(f"{api.url}/page/app.js")
    code = "\n".join(line for line in script.text.splitlines() if not line.lstrip().startswith("//"))
    assert script.status_code == 200 and "textContent" in code
    assert not any(sink in code for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"))


def test_the_audit_record_is_written_after_the_answer_by_a_background_task(api, worker):
    def audited(job_id):  # an earlier test's record may still land meanwhile: look for this job's
        records = client(api, "bob").get("/audit").json()["records"]
        return [record for record in records if record["job"] == job_id]

    job = submit(api, "bob", texts=REVIEWS[:1]).json()
    assert audited(job["id"]) == []  # the answer came first; the audit record is still on its way
    time.sleep(1)
    [record] = audited(job["id"])
    assert record["kind"] == "sentiment" and record["texts"] == 1


# ---- restarts and logs ------------------------------------------------------------------------


def test_the_api_restarts_without_losing_a_job_even_one_running_meanwhile(api, worker):
    finished = submit(api, texts=REVIEWS[:1]).json()
    final(api, finished["id"])
    running = submit(api, texts=REVIEWS[:8]).json()
    stream = events(client(api), running["links"]["events"])
    seen = [next(stream), next(stream)]
    stream.close()
    api.kill()
    api.start()
    assert client(api).get(f"/jobs/{finished['id']}").json()["status"] == "succeeded"
    rest = list(events(client(api), running["links"]["events"], last_event_id=seen[-1]["id"]))
    ids = [event["id"] for event in seen + rest]
    assert ids == list(range(ids[0], ids[-1] + 1)) and rest[-1]["event"] == "done"
    assert final(api, running["id"])["progress"]["current"] == 8


def test_no_token_ever_reaches_the_log(api, worker):
    job = submit(api, texts=REVIEWS[:1]).json()
    list(events(client(api), job["links"]["events"]))
    client(api).get(f"/jobs/{job['id']}")
    log = api.log.read_text()
    stream_token = job["links"]["events"].partition("?token=")[2]
    assert f"/jobs/{job['id']}/events?token=***" in log  # the request is logged, its token is not
    assert stream_token not in log and not any(token in log for token in TOKENS.values())
