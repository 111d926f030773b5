"""What a model call answers, before the server decides when to send it.

Each route (chat completions, responses, embeddings) turns a checked request into a
Reply: its token counts, and either a JSON body or the events of a stream. The server
then applies the limits, the faults and the latency the same way to all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .models import Model


@dataclass
class Reply:
    model: Model
    prompt_tokens: int
    completion_tokens: int
    rate_cost: int  # tokens counted against the tokens-per-minute limit
    units: int  # what the latency grows with: output tokens, or inputs for embeddings
    body: Callable[[], dict] | None = None  # the JSON answer (when not streaming)
    # A stream: (bytes to send, whether it carries a token and so waits one token's time).
    events: Callable[[], list[tuple[bytes, bool]]] | None = None
    headers: dict = field(default_factory=dict)
