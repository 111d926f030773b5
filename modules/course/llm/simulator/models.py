"""The models the simulator knows, and how fast each one answers.

Names are the ones real code written for OpenAI uses, so lessons work unchanged
against the simulator or the real API.
"""
from __future__ import annotations

from dataclasses import dataclass

CREATED = 1_700_000_000  # a fixed "created" timestamp keeps responses reproducible


@dataclass(frozen=True)
class Model:
    name: str
    kind: str  # "chat" or "embedding"
    network: float  # seconds of fixed cost per request (network + queueing + prompt)
    per_unit: float  # seconds per output token (chat) or per input (embedding)
    detail: int = 0  # 0 = short answers (small models), 1 = longer answers (large models)
    dimensions: int = 0  # embedding size; 0 for chat models
    custom_dimensions: bool = False  # whether `dimensions=` is accepted
    # OpenAI's published tier-1 limits: what the x-ratelimit-* headers report when no limit is set.
    rpm: int = 500
    tpm: int = 200_000
    max_output: int = 16_384  # the most completion tokens one answer may have (max_tokens)

    def as_openai(self) -> dict:
        return {"id": self.name, "object": "model", "created": CREATED, "owned_by": "system"}


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("gpt-4o-mini", "chat", network=0.25, per_unit=0.008),
        Model("gpt-4o", "chat", network=0.45, per_unit=0.020, detail=1, tpm=30_000),
        Model("gpt-4.1-mini", "chat", network=0.25, per_unit=0.007, max_output=32_768),
        Model("gpt-4.1", "chat", network=0.40, per_unit=0.018, detail=1, tpm=30_000, max_output=32_768),
        Model("gpt-3.5-turbo", "chat", network=0.20, per_unit=0.006, rpm=3_500, max_output=4_096),
        Model("text-embedding-3-small", "embedding", 0.12, 0.004, dimensions=1536, custom_dimensions=True,
              rpm=3_000, tpm=1_000_000),
        Model("text-embedding-3-large", "embedding", 0.15, 0.006, dimensions=3072, custom_dimensions=True,
              rpm=3_000, tpm=1_000_000),
        Model("text-embedding-ada-002", "embedding", 0.12, 0.004, dimensions=1536, rpm=3_000, tpm=1_000_000),
    )
}


def latency(model: Model, units: int, speed: float, jitter: float) -> float:
    """Seconds one request takes: fixed cost plus a part per token or input, scaled by speed.

    `jitter` is a factor near 1.0 derived from the request, so runs look realistic
    yet repeat exactly.
    """
    return (model.network + units * model.per_unit) / speed * jitter
