"""Requests and tokens per minute: token buckets, one per (kind, model, limit).

A bucket refills at limit/60 per second. A limit the simulator enforces holds about one
second of burst (OpenAI, too, enforces per-minute limits over shorter slices), so a
burst of 100 calls at 600 rpm mostly gets 429s, while calls spaced at the limit pass.
A limit only reported (the model's published default, when none is set) holds the
whole minute and never refuses.

What the x-ratelimit-* headers say, for either kind of bucket:
  remaining = the limit minus what was used and has not refilled yet ("left of the minute"),
  reset     = the time until the bucket is full again (back to its initial state).
The buckets live in an LRU of bounded size: a client sending random limits in
`x-sim-rpm` headers cannot grow the server.
"""
from __future__ import annotations

import time
from collections import OrderedDict

from .headers import duration

MAX_BUCKETS = 1024
HEADER_NAMES = {kind: (b"x-ratelimit-limit-" + kind.encode(), b"x-ratelimit-remaining-" + kind.encode(),
                       b"x-ratelimit-reset-" + kind.encode()) for kind in ("requests", "tokens")}


class Bucket:
    def __init__(self, per_minute: float, enforced: bool = True) -> None:
        self.limit = per_minute
        self.limit_text = f"{per_minute:g}".encode()
        self.enforced = enforced
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate) if enforced else per_minute
        self.level = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` is available now; 0 means there is enough (nothing is taken)."""
        self._refill()
        # A single request bigger than the whole bucket may go through once it is full.
        needed = min(cost, self.capacity)
        return 0.0 if self.level >= needed else (needed - self.level) / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self.level -= cost

    def used(self) -> float:
        """What was taken and has not refilled yet."""
        return self.capacity - self.level

    def remaining(self) -> int:
        return max(0, int(self.limit - self.used()))

    def reset_seconds(self) -> float:
        return max(0.0, self.used() / self.rate)

    def headers(self, kind: str) -> list[tuple[bytes, bytes]]:
        """The three x-ratelimit-* headers of this bucket, as raw ASGI header pairs."""
        names = HEADER_NAMES[kind]
        return [(names[0], self.limit_text), (names[1], b"%d" % self.remaining()),
                (names[2], duration(self.reset_seconds()).encode())]


class Limiter:
    """All buckets of one server run. `kind` is "requests" or "tokens"."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        self.buckets: OrderedDict[tuple, Bucket] = OrderedDict()

    def bucket(self, kind: str, model: str, per_minute: float, enforced: bool = True) -> Bucket:
        key = (kind, model, per_minute, enforced)
        found = self.buckets.get(key)
        if found is None:
            found = self.buckets[key] = Bucket(per_minute, enforced)
            if len(self.buckets) > self.max_buckets:
                self.buckets.popitem(last=False)  # the least recently used
        else:
            self.buckets.move_to_end(key)
        return found

    def reset(self) -> None:
        self.buckets.clear()
