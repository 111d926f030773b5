"""Counters for the admin endpoint GET /sim/stats: lessons show what the server saw."""
from __future__ import annotations

from collections import Counter


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()

    def record(self, status: int) -> None:
        self.requests += 1
        self.by_status[str(status)] += 1

    def as_json(self) -> dict:
        return {"requests": self.requests, "by_status": dict(self.by_status), "by_model": dict(self.by_model)}
