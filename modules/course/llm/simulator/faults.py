"""Failures on purpose: random 500s, the first K attempts failing, and outage windows."""
from __future__ import annotations

import random
import time
from collections import OrderedDict

MAX_KEYS = 10_000  # fail-first keys remembered; the oldest are forgotten, so memory stays bounded


def parse_window(text: str) -> tuple[float, float] | None:
    """ "30-45" -> (30.0, 45.0): seconds after start during which every request gets 503."""
    if not text:
        return None
    start, _, end = text.partition("-")
    try:
        window = float(start), float(end)
    except ValueError:
        raise SystemExit(f"outage {text!r} must look like START-END in seconds, e.g. 30-45")
    return window


class Faults:
    def __init__(self, seed: int = 1234, window: tuple[float, float] | None = None) -> None:
        self.seed = seed
        self.started = time.monotonic()
        self.window = window
        self.reset()

    def reset(self) -> None:
        self.random = random.Random(self.seed)  # seeded: a given server run is reproducible
        self.retry_after_random = random.Random(self.seed + 1)
        self.attempts: OrderedDict[str, int] = OrderedDict()
        self.outage_until = 0.0

    def in_outage(self) -> bool:
        now = time.monotonic()
        if now < self.outage_until:
            return True
        if self.window is None:
            return False
        start, end = self.window
        return start <= now - self.started < end

    def start_outage(self, seconds: float) -> None:
        self.outage_until = time.monotonic() + seconds

    def random_error(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def omit_retry_after(self, rate: float) -> bool:
        """Whether this 429 goes without Retry-After (drawn from its own seeded stream)."""
        return rate > 0 and self.retry_after_random.random() < rate

    def fail_first(self, key: str, count: int) -> bool:
        """True for the first `count` requests carrying `key`, False afterwards."""
        seen = self.attempts.pop(key, 0) + 1
        self.attempts[key] = seen
        if len(self.attempts) > MAX_KEYS:
            self.attempts.popitem(last=False)
        return seen <= count
