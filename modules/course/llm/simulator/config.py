"""How one simulator run behaves: speed, limits, faults, access. Set once at start."""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    speed: float = 1.0
    latency: float = -1.0  # >= 0: exactly this many seconds per request, whatever the model
    rpm: float = 0.0  # 0 = unlimited
    tpm: float = 0.0
    error_rate: float = 0.0
    outage: tuple[float, float] | None = None
    require_key: str = ""
    admin_key: str = ""  # empty: the /sim admin routes are open (fine on 127.0.0.1)
    # Far above any real request: 1M tokens of chat text is about 4 MiB, the largest
    # embeddings batch (300k tokens) about 2 MiB even as token arrays.
    max_body: int = 8 * MIB
    omit_retry_after: float = 0.0  # fraction of 429s sent without Retry-After, as the real API sometimes does
    seed: int = 1234
