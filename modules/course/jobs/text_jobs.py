"""The job API's one task: run an LLM kind (sentiment, summary, keywords, embed) over a list of
texts, one text at a time, and write every step into the job's record in Redis.

The record is the job's truth, not Celery's result backend: the API (course/api/) creates it,
reads it and cancels through it; this task only moves it on. Every change goes through one Lua
script, so a change never lands on a job that is already final: a canceled job stays canceled
even when the worker finishes the text it was on. Keys (all expire with the job):

    course:api:job:<id>            hash: owner, kind, status, current, total, times, result, error
    course:api:job:<id>:events     list: one JSON event per change; its position + 1 is its id
    course:api:job:<id>:results    list: one JSON output per text done (a retry resumes after them)
    course:api:owner:<owner>:active   set: the owner's unfinished jobs (the fair-share count)
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from celery.exceptions import Retry

from course.jobs.celery_app import app
from course.jobs.tasks import BadArguments, call_llm, client, store
from course.settings import settings

KINDS = ("sentiment", "summary", "keywords", "embed")
PROMPTS = {  # the same wording as the course's single tasks (tasks.py)
    "sentiment": "Classify the sentiment (positive, negative or neutral): {text}",
    "summary": "Summarise in one sentence: {text}",
    "keywords": "Extract the keywords: {text}",
}
FINAL = ("succeeded", "failed", "canceled")
EVENT_NAMES = {"succeeded": "done", "failed": "failed", "canceled": "canceled"}  # else "progress"
KEEP_SECONDS = 24 * 3600  # a job record lives as long as a Celery result (result_expires)


def job_key(job_id: str) -> str:
    return f"course:api:job:{job_id}"


def events_key(job_id: str) -> str:
    return f"course:api:job:{job_id}:events"


def results_key(job_id: str) -> str:
    return f"course:api:job:{job_id}:results"


def active_key(owner: str) -> str:
    return f"course:api:owner:{owner}:active"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def event(job_id: str, status: str, current: int, total: int, result=None, error=None) -> str:
    """One event of the job's stream, as stored: its name and the job as the client sees it."""
    data = {"id": job_id, "status": status, "progress": {"current": current, "total": total},
            "result": result, "error": error}
    return json.dumps({"event": EVENT_NAMES.get(status, "progress"), "data": data})


# KEYS: job, events, results, active.  ARGV: event JSON, output JSON or "", field, value, ...
# Returns the new event's id, 0 when the job is already final (nothing changed), -1 when there
# is no such job (never created, or expired).
MOVE_ON = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'succeeded' or status == 'failed' or status == 'canceled' then return 0 end
local ttl = redis.call('TTL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[2] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[2])
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
end
local new = redis.call('HGET', KEYS[1], 'status')
if new == 'succeeded' or new == 'failed' or new == 'canceled' then
  redis.call('SREM', KEYS[4], redis.call('HGET', KEYS[1], 'id'))
end
local id = redis.call('RPUSH', KEYS[2], ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return id
"""


def move_on_arguments(job_id: str, owner: str, status: str, current: int, total: int, output=None,
                      result=None, error=None, **times: str) -> tuple[list[str], list[str]]:
    """(keys, args) of MOVE_ON for one change of the job; the API runs the same script."""
    fields = {"status": status, "current": current, **times}
    if result is not None:
        fields["result"] = json.dumps(result)
    if error is not None:
        fields["error"] = error
    keys = [job_key(job_id), events_key(job_id), results_key(job_id), active_key(owner)]
    args = [event(job_id, status, current, total, result, error),
            "" if output is None else json.dumps(output)]
    for name, value in fields.items():
        args += [name, str(value)]
    return keys, args


_move_on = None


def move_on(job_id: str, owner: str, status: str, current: int, total: int, **change) -> int:
    """Apply one change to the record (see MOVE_ON); the new event's id, 0 if final, -1 if gone."""
    global _move_on
    if _move_on is None:
        _move_on = store().register_script(MOVE_ON)
    keys, args = move_on_arguments(job_id, owner, status, current, total, **change)
    return int(_move_on(keys=keys, args=args))


async def _run_one(kind: str, text: str):
    """The LLM call for one text; what it returns is that text's output in the job's result."""
    if kind == "embed":
        response = await client().embeddings.create(model=settings.embedding_model, input=[text])
        vector = response.data[0].embedding
        return {"dimensions": len(vector), "first": [round(x, 4) for x in vector[:3]]}
    reply = await client().chat.completions.create(
        model=settings.chat_model, max_tokens=200,
        messages=[{"role": "user", "content": PROMPTS[kind].format(text=text)}])
    return reply.choices[0].message.content or ""


def _check(kind, texts) -> None:
    if kind not in KINDS:
        raise BadArguments(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise BadArguments("texts must be a non-empty list of non-empty strings")


@app.task(bind=True, ignore_result=True, throws=(BadArguments,), max_retries=10)
def run_text_job(self, kind, texts):
    """Run `kind` over `texts` for the API job whose id is this task's id.

    Checks the record before each text: a job canceled meanwhile stops there. A transient LLM
    error retries the task later (call_llm); the retry resumes after the texts already done.
    """
    job_id = self.request.id
    record = store().hgetall(job_key(job_id))
    if not record or record["status"] in FINAL:
        return  # expired, or canceled while it waited in the queue
    owner, total = record["owner"], len(texts)
    try:
        _check(kind, texts)
        done = store().llen(results_key(job_id))
        if move_on(job_id, owner, "running", done, total, started_at=record.get("started_at") or now()) <= 0:
            return
        for index in range(done, total):
            output = call_llm(self, _run_one(kind, texts[index]))
            if move_on(job_id, owner, "running", index + 1, total, output=output) <= 0:
                return  # canceled while this text ran: its output is dropped
        outputs = [json.loads(item) for item in store().lrange(results_key(job_id), 0, -1)]
        move_on(job_id, owner, "succeeded", total, total, result=outputs, finished_at=now())
    except Retry:
        raise
    except Exception as error:
        done = store().llen(results_key(job_id))
        move_on(job_id, owner, "failed", done, total, error=f"{type(error).__name__}: {error}",
                finished_at=now())
        raise

