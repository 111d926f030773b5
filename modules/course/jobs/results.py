"""Small, cheap results: Celery's Redis result backend with two changes.

- With `result_extended=True` Celery copies a task's arguments into its result on every state
  write (STARTED, PROGRESS, SUCCESS): a 10 MiB prompt was stored three times over, for a day. Here
  results keep what `result_extended` gives (name, worker, queue, retries) and the small arguments,
  and a short digest in place of any argument larger than ARGUMENT_KEPT_MAX bytes.
- Each state is written in one round trip instead of two (Celery reads the key before writing),
  and STARTED is not published: a client waiting for a result waits for its end.
The app uses it for `redis://` result URLs (`override_backends` in celery_app.py).
"""
from __future__ import annotations

import hashlib
import json

from celery import states
from celery.backends.redis import RedisBackend
from kombu.utils.encoding import bytes_to_str, ensure_bytes

ARGUMENT_KEPT_MAX = 1024  # bytes of JSON per argument kept in a result


def digest(value) -> str:
    """A short stand-in for a large value: its size and the start of its SHA-256."""
    raw = json.dumps(value, default=str).encode()
    return f"<{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}: too large to keep here>"


def shrink(value, limit: int = ARGUMENT_KEPT_MAX):
    """`value` itself when its JSON fits in `limit` bytes, else its digest."""
    return value if len(json.dumps(value, default=str).encode()) <= limit else digest(value)


def shrink_arguments(args, kwargs, limit: int = ARGUMENT_KEPT_MAX):
    """(args, kwargs) with each argument over `limit` bytes replaced by its digest."""
    return ([shrink(a, limit) for a in args or ()],
            {name: shrink(v, limit) for name, v in (kwargs or {}).items()})


class CompactRedisBackend(RedisBackend):
    """Celery's Redis backend; extended results keep a digest of large arguments, not the arguments."""

    def _get_result_meta(self, *args, **kwargs):
        meta = super()._get_result_meta(*args, **kwargs)
        if "args" not in meta:  # result_extended is off, or no request
            return meta
        encoded = isinstance(meta["args"], bytes)
        raw_args, raw_kwargs = meta["args"], meta["kwargs"]
        size = len(raw_args) + len(raw_kwargs) if encoded else len(json.dumps([raw_args, raw_kwargs], default=str))
        if size <= ARGUMENT_KEPT_MAX:
            return meta  # the usual case, and the fast one: nothing to shrink
        if encoded:
            raw_args, raw_kwargs = self.decode(raw_args), self.decode(raw_kwargs)
        small_args, small_kwargs = shrink_arguments(raw_args, raw_kwargs)
        if encoded:
            small_args, small_kwargs = ensure_bytes(self.encode(small_args)), ensure_bytes(self.encode(small_kwargs))
        meta["args"], meta["kwargs"] = small_args, small_kwargs
        return meta

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        # Celery reads the key before each write, so that nothing replaces a SUCCESS: two round
        # trips per state. SET ... GET writes and returns the old value in one; in the rare case
        # the old value was a SUCCESS (a second copy of a finished task), it goes back.
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        key, value = self.get_key_for_task(task_id), self.encode(meta)
        expires = self.failure_expires if state == states.FAILURE else self.expires
        replaced = self.ensure(self._write, (key, value, expires, state != states.STARTED))
        if replaced and self.decode_result(replaced)["status"] == states.SUCCESS:
            self.ensure(self._write, (key, replaced, self.expires, False))
        return result

    def _write(self, key, value, expires, publish):
        """SET with expiry, returning the old value; PUBLISH for those waiting (not for STARTED:
        a client waiting for a result waits for its end, and a poll reads the key)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(key, value, ex=int(expires) if expires else None, get=True)
            if publish:
                pipe.publish(key, value)
            return pipe.execute()[0]
