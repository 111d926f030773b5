"""Token buckets for requests per minute and tokens per minute, one bucket per (model, limit).

A bucket refills at limit/60 per second and holds about one second of burst, so a
burst of 100 calls at 600 rpm mostly gets 429s, while calls spaced at the limit pass.
"""
from __future__ import annotations

import time


class Bucket:
    def __init__(self, per_minute: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
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
        self.level -= cost

    def remaining(self) -> int:
        return max(0, int(self.level))


class Limiter:
    """All buckets of one server run. `kind` is "requests" or "tokens"."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str, float], Bucket] = {}

    def bucket(self, kind: str, model: str, per_minute: float) -> Bucket:
        key = (kind, model, per_minute)
        found = self.buckets.get(key)
        if found is None:
            found = self.buckets[key] = Bucket(per_minute)
        return found

    def reset(self) -> None:
        self.buckets.clear()
