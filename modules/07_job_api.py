"""Lesson 07: a job API and its page

Run:  make lesson N=07      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
Second terminal (optional): make worker
You learn: how a web API hands long LLM work to Celery and answers at once (202 + Location), how
a client follows the job (polling with Retry-After, then server-sent events that resume after a
reconnect), listing and cancelling, why another caller's job is a 404, limits that say what they
are, and what FastAPI's BackgroundTasks lose when the web process dies that Celery keeps.

The lesson starts the course's job API (FastAPI under uvicorn, course/api/) on a free port of
127.0.0.1, with Redis and a worker as lessons 03-05 do, and calls it over HTTP with httpx, as a
browser or another service would. Each table shows the requests a step made and what came back.

Recap:
- POST answers 202 and a Location at once; the work runs in a worker, the job's record lives in
  Redis, so the API can restart and an unknown id is a 404, never "pending" for ever.
- Poll with GET and wait what Retry-After says, or follow the event stream; Last-Event-ID
  resumes a dropped stream with nothing missed.
- Another caller's job is a 404, never a 403: the answer does not even confirm that it exists.
- Limits answer 422 with the limit in the message; over its share of jobs a caller gets 429 and
  Retry-After.
- BackgroundTasks die with the web process; work that must happen goes to Celery.
"""
import asyncio
import itertools
import statistics
import time
from datetime import datetime

from course.api.client import events, exchange
from course.runner import progress_bar, run, shows, timer
from course.samples import ARTICLE, REVIEWS


def poll(client, location):
    """GET the job until it is final, waiting what Retry-After says."""
    answers = [client.get(location)]
    while "retry-after" in answers[-1].headers and len(answers) < 120:
        time.sleep(float(answers[-1].headers["retry-after"]))
        answers.append(client.get(location))
    return answers


def seconds_between(job, start, end):
    """Seconds between two of the job's own timestamps (ISO 8601)."""
    return (datetime.fromisoformat(job[end])
            - datetime.fromisoformat(job[start])).total_seconds()


@shows(poll)
def submit_then_poll(api, worker):
    """POST answers 202 at once; GET follows the job

    The API checks the request, writes the job's record to Redis, queues a Celery task and
    answers `202 Accepted` with `Location: /jobs/<id>`, without waiting for the LLM. The client
    then asks that location; while the job is unfinished each answer says `Retry-After`.

    Result: the 202 came after {answer_ms}; the job took {job_s} in the worker, and {gets}
    GETs followed it to {status}.
    """
    alice, _ = api.callers()
    with timer() as answering:
        submitted = alice.post("/jobs", json={"kind": "summary",
                                              "texts": REVIEWS[:6]})
    answers = poll(alice, submitted.headers["location"])
    job = answers[-1].json()

    return {"requests": [exchange(r) for r in [submitted, *answers]],
            "answer_ms": answering.seconds * 1000,
            "job_s": seconds_between(job, "created_at", "finished_at"),
            "gets": len(answers), "status": job["status"]}


def follow_the_event_stream(api, worker):
    """Server-sent events: each step pushed as it happens

    `GET /jobs/<id>/events` keeps the answer open and writes one event per change: `event:
    progress` with the job as JSON and `id:` its number, then `done` and the end of the
    stream. No polling, nothing missed. A browser's EventSource reads it; here httpx does.

    Result: {received} events for {texts} texts, the last one `{last_event}`.
    """
    alice, _ = api.callers()
    job = alice.post("/jobs", json={"kind": "keywords",
                                    "texts": REVIEWS[:6]}).json()
    seen, shown = [], 0
    with progress_bar("keywords", total=len(REVIEWS[:6])) as advance:
        for event in events(alice, job["links"]["events"]):
            done = event["data"]["progress"]["current"]
            advance(done - shown)
            shown = done
            seen.append({"id": event["id"], "event": event["event"],
                         "status": event["data"]["status"],
                         "texts_done": done})

    return {"events": seen, "received": len(seen),
            "texts": len(REVIEWS[:6]), "last_event": seen[-1]["event"]}


def reconnect_with_last_event_id(api, worker):
    """A dropped stream resumes where it stopped

    Connections drop: a laptop sleeps, a proxy times out. EventSource then reconnects by itself
    and sends `Last-Event-ID`, the id of the last event it got; the API sends every event after
    it from the job's event list in Redis. Here we read three events, hang up, wait a moment
    (the job goes on), and reconnect with the last id.

    Result: {before} events before the drop, {after} after it: {missing} missing, {twice}
    twice.
    """
    alice, _ = api.callers()
    job = alice.post("/jobs", json={"kind": "sentiment",
                                    "texts": REVIEWS}).json()
    url = job["links"]["events"]
    first = list(itertools.islice(events(alice, url), 3))
    time.sleep(0.5)  # hung up; the job goes on meanwhile
    last_seen = first[-1]["id"]
    rest = list(events(alice, url, last_event_id=last_seen))
    ids = [event["id"] for event in first + rest]

    return {"ids_before_the_drop": [e["id"] for e in first],
            "ids_after_it": [e["id"] for e in rest],
            "before": len(first), "after": len(rest),
            "missing": len(set(range(ids[0], ids[-1] + 1)) - set(ids)),
            "twice": len(ids) - len(set(ids))}


def the_page(api):
    """The page: the same API in a browser

    The API also serves a small page (plain HTML and JavaScript, no build step): paste a
    token, pick a kind, submit texts, and a `<progress>` bar fills from the event stream; a
    button cancels. The token stays in the browser tab (sessionStorage) and goes only to
    this API. Open the page now, while the lesson waits for Enter.

    Result: open {open_in_your_browser} and paste {paste_this_token}.
    """
    page = api.callers()[0].get("/")
    policy = page.headers["content-security-policy"]

    return {"open_in_your_browser": f"{api.url}/",
            "paste_this_token": api.token_hint,
            "requests": [exchange(page)],
            "no_inline_scripts": "script-src 'self'" in policy}


def list_your_jobs(api, worker):
    """GET /jobs: your own jobs, newest first, a page at a time

    Each caller sees only its own jobs. A page holds `limit` jobs; `next` is the link to the
    following page, so a client walks them without counting.

    Result: alice's first page of {limit} starts with her newest job; bob sees {bob_jobs}
    job(s), his own.
    """
    alice, bob = api.callers()
    bob.post("/jobs", json={"kind": "embed", "texts": REVIEWS[:2]})
    first = alice.get("/jobs", params={"limit": 2})
    second = alice.get(first.json()["next"])
    theirs = bob.get("/jobs")

    return {"requests": [exchange(r) for r in (first, second, theirs)],
            "limit": 2,
            "kinds_newest_first": [j["kind"] for j in first.json()["jobs"]],
            "bob_jobs": len(theirs.json()["jobs"])}


def cancel_a_running_job(api, worker):
    """DELETE cancels: the worker stops before its next text

    The API marks the job canceled at once and revokes its task; the task reads the record
    before each text and stops there. What it was doing meanwhile is dropped. A second DELETE
    has nothing left to cancel: 409 Conflict.

    Result: canceled at text {progress_at_cancel} of {texts}; a second later it was still at
    {progress_a_second_later}.
    """
    alice, _ = api.callers()
    job = alice.post("/jobs", json={"kind": "summary",
                                    "texts": REVIEWS * 2}).json()
    for event in events(alice, job["links"]["events"]):
        if event["data"]["progress"]["current"] >= 2:
            break
    cancel = alice.delete(job["links"]["self"])
    time.sleep(1)
    later = alice.get(job["links"]["self"])
    again = alice.delete(job["links"]["self"])

    return {"requests": [exchange(r) for r in (cancel, later, again)],
            "texts": len(REVIEWS * 2),
            "progress_at_cancel": cancel.json()["progress"]["current"],
            "progress_a_second_later": later.json()["progress"]["current"]}


def another_callers_job_is_404(api, worker):
    """Someone else's job does not exist for you

    Bob asks for alice's job by its id: the API answers 404, exactly as for an id that never
    existed, not 403, which would confirm that it does. No token, or a token that is not one
    of API_TOKENS: 401, with `WWW-Authenticate: Bearer`.

    Result: bob got {bob_get} and {bob_delete}; alice's job went on and ended
    {alice_sees}.
    """
    alice, bob = api.callers()
    job = alice.post("/jobs", json={"kind": "sentiment",
                                    "texts": REVIEWS[:1]}).json()
    mine = job["links"]["self"]
    tries = [bob.get(mine), bob.delete(mine), bob.get("/jobs/no-such-id"),
             bob.get(mine, headers={"Authorization": ""}),
             bob.get(mine, headers={"Authorization": "Bearer guess"}),
             alice.get(mine)]

    return {"requests": [exchange(r) for r in tries],
            "bob_get": tries[0].status_code,
            "bob_delete": tries[1].status_code,
            "alice_sees": poll(alice, mine)[-1].json()["status"]}


def limits_say_what_they_are(api):
    """Bad input: a 4xx that says what is wrong

    Every error is `application/problem+json` (RFC 9457): `type`, `title`, `status` and a
    `detail` a person can act on. The limits come from the API's settings
    (GET /health lists them); none of these requests reaches a worker.

    Result: {refused} requests refused, none with a 500.
    """
    alice, _ = api.callers()
    limit = alice.get("/health").json()["limits"]
    bad = [{"kind": "summary", "texts": ["hi"] * (limit["texts"] + 1)},
           {"kind": "summary", "texts": ["x" * (limit["text_chars"] + 1)]},
           {"kind": "translate", "texts": ["hi"]},
           {"kind": "summary", "texts": ["hi"], "url": "http://x.test"}]
    answers = [alice.post("/jobs", json=body) for body in bad]
    answers.append(alice.post("/jobs", content=b'{"kind": "summary",',
                              headers={"Content-Type": "application/json"}))

    return {"requests": [exchange(r) for r in answers],
            "refused": sum(400 <= r.status_code < 500 for r in answers)}


async def a_burst_of_submissions(api, worker):
    """A burst: many submissions at once, and a fair share each

    Fifteen POSTs from bob at the same moment. Each caller may have a few unfinished jobs
    (API_MAX_ACTIVE); past that the API answers 429 with Retry-After, so one caller cannot
    fill the queue for everyone. Every accepted job is followed to its end.

    Result: {accepted} accepted in {p50_ms} (median), {refused} refused with 429;
    {finished} of the {accepted} accepted jobs finished.
    """
    async def submit(client):
        with timer() as took:
            answer = await client.post("/jobs", json={
                "kind": "sentiment", "texts": [REVIEWS[0]]})
        return answer, took.seconds * 1000

    async def final_status(client, location):
        answer = await client.get(location)
        while "retry-after" in answer.headers:
            await asyncio.sleep(float(answer.headers["retry-after"]))
            answer = await client.get(location)
        return answer.json()["status"]

    async with api.async_caller("bob") as bob:
        burst = await asyncio.gather(*(submit(bob) for _ in range(15)))
        accepted = [(a, ms) for a, ms in burst if a.status_code == 202]
        finals = await asyncio.gather(*(
            final_status(bob, a.headers["location"]) for a, _ in accepted))

    return {"accepted": len(accepted),
            "refused": sum(a.status_code == 429 for a, _ in burst),
            "p50_ms": statistics.median(ms for _, ms in accepted),
            "slowest_ms": max(ms for _, ms in accepted),
            "finished": finals.count("succeeded")}


def background_tasks_vs_celery(api, worker):
    """BackgroundTasks die with the web process; Celery jobs do not

    POST /jobs also adds an audit record with FastAPI's BackgroundTasks: it runs inside the
    API process after the answer went out (here it takes half a second, like a call to an
    audit service). Three jobs with the API left running, then three more and a kill at once,
    as a crash or an impatient deploy would, and the same API started again.

    Result: after the kill {jobs_after_kill} of 3 jobs finished, {audits_after_kill} of 3
    audit records were written (with no kill: {audits_kept_running}).
    """
    alice, _ = api.callers()
    runs = []
    for kill in (False, True):
        audits = len(alice.get("/audit").json()["records"])
        job = {"kind": "summary", "texts": [ARTICLE]}
        jobs = [alice.post("/jobs", json=job) for _ in range(3)]
        if kill:
            api.kill()   # SIGKILL: no time to finish anything
            api.start()  # the same API again: same port, same Redis
        finals = [poll(alice, j.headers["location"])[-1] for j in jobs]
        time.sleep(1)  # time enough for any audit record still on its way
        runs.append({
            "api": "killed, restarted" if kill else "left running",
            "jobs_finished": sum(f.json()["status"] == "succeeded"
                                 for f in finals),
            "audit_records":
                len(alice.get("/audit").json()["records"]) - audits})

    return {"runs": runs, "jobs_after_kill": runs[1]["jobs_finished"],
            "audits_after_kill": runs[1]["audit_records"],
            "audits_kept_running": runs[0]["audit_records"]}


STEPS = [
    submit_then_poll,
    follow_the_event_stream,
    reconnect_with_last_event_id,
    the_page,
    list_your_jobs,
    cancel_a_running_job,
    another_callers_job_is_404,
    limits_say_what_they_are,
    a_burst_of_submissions,
    background_tasks_vs_celery,
]

if __name__ == "__main__":
    run(STEPS)
