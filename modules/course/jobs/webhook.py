"""Webhooks, safe by default: a task POSTs a signed JSON body, only to an allowed host, and the
course's receiver accepts a call only if its signature, its time and its novelty check out.

The sender (a task, in the worker):

    webhook.check_url(url)              # before any work: WebhookRefused unless host:port is allowed
    webhook.deliver(url, {"id": ...})   # a signed POST; redirects are never followed;
                                        # WebhookFailed says why it did not arrive

The receiver (a lesson), on 127.0.0.1:WEBHOOK_PORT, the one address allowed by default:

    with webhook.receiver() as hook:
        task.delay(webhook_url=hook.url)
        call = hook.wait(timeout=30)    # the first accepted call, or None
        call["body"], call["received_at"]
        hook.send_forged({"id": "x"})                       # unsigned      -> 401, "no signature"
        hook.send_forged({"id": "x"}, how="wrong-secret")   # -> 401, "signature does not match"
        hook.send_forged({"id": "x"}, how="stale")          # -> 401, "stale: signed 600 s ago ..."
        hook.replay(call)               # the accepted call sent again, byte for byte -> 409, "replayed ..."
        hook.calls                      # every call in order: {"accepted": bool, "reason": str | None,
                                        #   "status", "body", "received_at", ...}
        hook.accepted, hook.rejected    # the same calls, split

The signature follows Stripe's and Standard Webhooks' scheme: the header
`X-Course-Signature: t=<unix time>,v1=<hex>` where hex = HMAC-SHA256(secret, "<t>.<body>").
The time bounds a replay to the tolerance window (5 minutes); within it the receiver remembers
each signature it accepted and refuses a second one.

Settings: WEBHOOK_ALLOWED (host:port entries; empty = 127.0.0.1 and localhost on WEBHOOK_PORT),
WEBHOOK_PORT (8200), WEBHOOK_SECRET (empty = one the course makes once and keeps in
.course-data/webhook-secret, mode 0600, so the worker and the lesson's receiver share it).
The secret is never printed or logged; error messages name only host:port, never the URL's
path or query, and a refused URL is refused before any connection, so the message cannot tell
an open port from a closed one.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from course.console import Stop
from course.settings import DATA, settings

SIGNATURE_HEADER = "X-Course-Signature"
TOLERANCE_SECONDS = 300  # a call signed longer ago (or later) than this is refused as stale
SECRET_FILE = DATA / "webhook-secret"
MAX_BODY = 64 * 1024
ATTEMPTS = 3  # a delivery that meets a transient error is tried this often, 0.5 s then 1 s apart
TIMEOUT_SECONDS = 5


class WebhookError(Exception):
    """A webhook was not delivered; the message says why (host:port only, never the secret)."""


class WebhookRefused(WebhookError):
    """The URL is not one the course may call; nothing was sent."""


class WebhookFailed(WebhookError):
    """The URL is allowed, but the delivery did not succeed."""


# ---- the secret and the signature -------------------------------------------------------


def signing_secret(kept_in: Path = SECRET_FILE) -> bytes:
    """WEBHOOK_SECRET, or the one kept in `kept_in` (made on first use, readable by the owner only)."""
    if settings.webhook_secret:
        return settings.webhook_secret.encode()
    with contextlib.suppress(FileNotFoundError):
        kept = kept_in.read_text().strip()
        if kept:
            return kept.encode()
    kept_in.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: link fails if another process got there first,
    # and nobody ever reads a half-written file.
    draft = kept_in.with_name(f".{kept_in.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    try:
        os.link(draft, kept_in)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return kept_in.read_text().strip().encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: bytes | None = None, timestamp: int | None = None) -> dict:
    """The headers of one delivery of `body`, signed now (or at `timestamp`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    value = signature(secret or signing_secret(), timestamp, body)
    return {"Content-Type": "application/json", "User-Agent": "course-webhook/1",
            SIGNATURE_HEADER: f"t={timestamp},v1={value}"}


# ---- the sender ------------------------------------------------------------------------


def allowed_destinations(entries: str | None = None) -> frozenset[str]:
    """The host:port pairs a webhook may go to: WEBHOOK_ALLOWED, else the course's receiver."""
    entries = settings.webhook_allowed if entries is None else entries
    if not entries.strip():
        return frozenset({f"127.0.0.1:{settings.webhook_port}", f"localhost:{settings.webhook_port}"})
    allowed = set()
    for entry in filter(None, (e.strip() for e in entries.split(","))):
        parts = urlsplit(f"//{entry}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise WebhookRefused(f"WEBHOOK_ALLOWED has {entry!r}: write each entry as host:port, "
                                 "e.g. 127.0.0.1:8200,hooks.example.com:443")
        allowed.add(_destination(parts.hostname, port))
    return frozenset(allowed)


def check_url(url: str, allowed: frozenset[str] | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL the course may POST to; WebhookRefused otherwise.

    Only the URL is looked at: no name is resolved and no connection is made, so a refusal
    says the same whether anything listens at that address or not.
    """
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook_url must be an http:// or https:// URL, got {_shorten(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook_url must not carry a user or password: sign, do not log in")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused(f"webhook_url has no valid port: {_shorten(url)!r}") from None
    destination = _destination(parts.hostname, port)
    if destination not in (allowed_destinations() if allowed is None else allowed):
        raise WebhookRefused(f"webhook to {destination} refused: it is not on the allow-list, so nothing "
                             f"was sent. To allow it, add {destination} to WEBHOOK_ALLOWED.")
    path = parts.path or "/"
    return parts.scheme, parts.hostname, port, f"{path}?{parts.query}" if parts.query else path


def deliver(url: str, payload: dict, *, allowed: frozenset[str] | None = None, secret: bytes | None = None,
            attempts: int = ATTEMPTS, timeout: float = TIMEOUT_SECONDS) -> int:
    """POST `payload` as signed JSON to an allowed `url`; return the receiver's 2xx status.

    A refused connection, a timeout or a 5xx/429 answer is tried again (`attempts` in all,
    0.5 s then 1 s apart, each signed anew); any other answer fails at once: a redirect is
    never followed, and a 4xx means the receiver refused this delivery, which a retry repeats.
    """
    scheme, host, port, path = check_url(url, allowed)
    where = _destination(host, port)
    body = json.dumps(payload, separators=(",", ":")).encode()
    for attempt in range(1, attempts + 1):
        try:
            status = _post(scheme, host, port, path, body, signed_headers(body, secret), timeout)
        except (OSError, http.client.HTTPException) as error:
            problem = _describe(error, timeout)
        else:
            if 200 <= status < 300:
                return status
            if 300 <= status < 400:
                raise WebhookFailed(f"webhook to {where} failed: it answered {status}, a redirect, "
                                    "and webhooks never follow redirects")
            problem = f"it answered {status}"
            if status < 500 and status != 429:
                raise WebhookFailed(f"webhook to {where} failed: {problem}")
        if attempt < attempts:
            time.sleep(0.5 * 2 ** (attempt - 1))
    raise WebhookFailed(f"webhook to {where} failed: {problem} ({attempts} attempts)")


def _post(scheme: str, host: str, port: int, path: str, body: bytes, headers: dict, timeout: float) -> int:
    # http.client rather than urllib: it follows no redirect and uses no proxy from the environment.
    if scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_BODY)
        return response.status
    finally:
        connection.close()


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    if isinstance(error, ssl.SSLError):
        return f"TLS error ({error.reason or error})"
    if isinstance(error, http.client.HTTPException):
        return "the answer is not HTTP"
    return getattr(error, "strerror", None) or type(error).__name__


def _destination(host: str, port: int) -> str:
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _shorten(url) -> str:
    text = str(url)
    return text if len(text) <= 80 else text[:77] + "..."


# ---- the receiver ----------------------------------------------------------------------


class Receiver:
    """The calls received so far, accepted or not, and what a lesson does with them."""

    def __init__(self, url: str, secret: bytes, tolerance: float):
        self.url = url
        self.calls: list[dict] = []
        self._secret = secret
        self._tolerance = tolerance
        self._seen: dict[str, float] = {}  # accepted signatures -> when, for replay detection
        self._lock = threading.Lock()
        self._arrived = threading.Event()

    @property
    def accepted(self) -> list[dict]:
        return [call for call in self.calls if call["accepted"]]

    @property
    def rejected(self) -> list[dict]:
        return [call for call in self.calls if not call["accepted"]]

    def wait(self, timeout: float) -> dict | None:
        """The first accepted call, or None if none arrived within `timeout` seconds."""
        return self.accepted[0] if self._arrived.wait(timeout) else None

    def send_forged(self, body: dict, how: str = "unsigned") -> int:
        """POST `body` the way an attacker could; return the HTTP status the receiver answered.

        how: "unsigned" (no signature header), "wrong-secret" (signed with another key), or
        "stale" (signed with the right key, 10 minutes ago: a call captured and sent later).
        """
        raw = json.dumps(body, separators=(",", ":")).encode()
        if how == "unsigned":
            headers = {"Content-Type": "application/json"}
        elif how == "wrong-secret":
            headers = signed_headers(raw, secrets.token_bytes(32))
        elif how == "stale":
            headers = signed_headers(raw, self._secret, int(time.time() - 2 * self._tolerance))
        else:
            raise ValueError(f"how must be 'unsigned', 'wrong-secret' or 'stale', got {how!r}")
        return self._send(raw, headers)

    def replay(self, call: dict) -> int:
        """Send a received call again, the same bytes and signature; return the HTTP status."""
        headers = {"Content-Type": "application/json"}
        if call["signature"] is not None:
            headers[SIGNATURE_HEADER] = call["signature"]
        return self._send(call["raw_body"].encode(), headers)

    def _send(self, raw: bytes, headers: dict) -> int:
        parts = urlsplit(self.url)
        return _post("http", parts.hostname, parts.port, parts.path, raw, headers, TIMEOUT_SECONDS)

    def check(self, raw: bytes, header: str | None) -> tuple[int, str | None]:
        """(HTTP status, reason for refusing or None) for one call, in the order a receiver checks."""
        if header is None:
            return 401, "no signature"
        fields = [field.partition("=") for field in header.split(",")]
        stamps = [value for key, _, value in fields if key.strip() == "t"]
        offered = [value.strip() for key, _, value in fields if key.strip() == "v1"]
        if len(stamps) != 1 or not stamps[0].strip().isdigit() or not offered:
            return 401, "malformed signature header"
        timestamp = int(stamps[0])
        age = time.time() - timestamp
        if abs(age) > self._tolerance:
            when = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s in the future"
            return 401, f"stale: signed {when}, more than {self._tolerance:g} s from now"
        expected = signature(self._secret, timestamp, raw)
        if not any(hmac.compare_digest(expected, value) for value in offered):
            return 401, "signature does not match"
        with self._lock:
            now = time.time()
            self._seen = {sig: at for sig, at in self._seen.items() if now - at <= 2 * self._tolerance}
            if expected in self._seen:
                return 409, "replayed: this signature was already accepted"
            self._seen[expected] = now
        return 204, None

    def record(self, raw: bytes, header: str | None, status: int, reason: str | None) -> dict:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
            if reason is None:
                status, reason = 400, "the body is not JSON"
        call = {"accepted": reason is None, "reason": reason, "status": status, "body": body,
                "received_at": time.time(), "signature": header, "raw_body": raw.decode(errors="replace")}
        self.calls.append(call)
        if reason is None:
            self._arrived.set()
        return call


@contextlib.contextmanager
def receiver(path: str = "/hooks/job-done", port: int | None = None, secret: bytes | None = None,
             tolerance: float = TOLERANCE_SECONDS):
    """Serve POST `path` on 127.0.0.1:`port` (WEBHOOK_PORT; 0 = a free one) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != path:
                self.send_error(404)
                return
            length = self.headers.get("Content-Length") or "0"
            length = int(length) if length.isdigit() else MAX_BODY + 1
            if length > MAX_BODY:
                hook.record(b"", self.headers.get(SIGNATURE_HEADER), 413, "body too large or of unknown length")
                self.send_error(413)
                return
            raw = self.rfile.read(length)
            header = self.headers.get(SIGNATURE_HEADER)
            call = hook.record(raw, header, *hook.check(raw, header))
            self.send_response(call["status"])
            if call["accepted"]:
                self.end_headers()
                return
            answer = json.dumps({"accepted": False, "reason": call["reason"]}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):  # quiet: the lesson shows what arrived
            pass

    port = settings.webhook_port if port is None else port
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as error:
        raise Stop(f"The webhook receiver cannot listen on 127.0.0.1:{port} ({error.strerror}). Stop what "
                   "uses that port, or set WEBHOOK_PORT in .env to a free one (the default allow-list "
                   "follows it; restart your worker so it reads the new value).") from None
    hook = Receiver(f"http://127.0.0.1:{server.server_port}{path}", secret or signing_secret(), tolerance)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
