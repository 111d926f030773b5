"""The client side of the job API, as a lesson or a test uses it with httpx: read a job's event
stream, and write a request with its answer as one short row of a table."""
from __future__ import annotations

import json
import re
from typing import Iterator

import httpx

UUID = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
TOKEN = re.compile(r"(token=)[^&]*")


def events(client: httpx.Client, url: str, last_event_id: int | None = None,
           timeout: float = 120) -> Iterator[dict]:
    """The server-sent events at `url`, each as {"id": 3, "event": "progress", "data": {...}},
    until the server ends the stream. `last_event_id` resumes after that event, as EventSource
    does when it reconnects. A 204 (the job is over and you saw its end) yields nothing."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        if response.status_code == 204:
            return
        response.raise_for_status()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # a comment: the keep-alive ping
            if line:
                name, _, value = line.partition(":")
                fields[name] = fields.get(name, "") + ("\n" if name in fields else "") + value.removeprefix(" ")
                continue
            if "data" in fields:  # a blank line ends an event
                yield {"id": int(fields["id"]) if fields.get("id", "").isdigit() else None,
                       "event": fields.get("event", "message"), "data": json.loads(fields["data"])}
            fields = {}


def short(text: str) -> str:
    """A path or a message with each job id cut to its first 8 characters and tokens hidden."""
    return TOKEN.sub(r"\1***", UUID.sub(r"\1", text))


def exchange(response: httpx.Response) -> dict:
    """A request and its answer as one row: {"request": "POST /jobs", "answer": "202 queued 0/6"}."""
    request = response.request
    query = f"?{request.url.query.decode()}" if request.url.query else ""
    return {"request": short(f"{request.method} {request.url.path}{query}"),
            "answer": short(f"{response.status_code} {gist(response)}".strip())}


def gist(response: httpx.Response) -> str:
    """The few words of an answer that matter: a job's status and progress, a problem's detail."""
    extra = [f"Retry-After: {response.headers['retry-after']}"] if "retry-after" in response.headers else []
    if "location" in response.headers:
        extra.append(f"Location: {response.headers['location']}")
    content_type = response.headers.get("content-type", "")
    body = response.json() if response.content and "json" in content_type else None
    if isinstance(body, dict) and "detail" in body:
        said = str(body["detail"])
    elif isinstance(body, dict) and "progress" in body:
        said = f"{body['status']} {body['progress']['current']}/{body['progress']['total']}"
    elif isinstance(body, dict) and "jobs" in body:
        count = len(body["jobs"])
        said = f"{count} job{'s' * (count != 1)}" + (", and a next page" if body.get("next") else "")
    elif response.content and body is None:
        said = f"{len(response.content):,} bytes of {content_type.partition(';')[0] or 'data'}"
    else:
        said = ""
    return " · ".join(part for part in [said, *extra] if part)
