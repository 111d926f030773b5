"""What a caller may send, with the limits said in the message that refuses it (422)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from course.jobs.text_jobs import KINDS
from course.settings import settings

LIMITS = {"texts": settings.api_max_texts, "text_chars": settings.api_max_text_chars,
          "total_chars": settings.api_max_total_chars, "active_per_caller": settings.api_max_active}
# The largest body read at all (413 past it): the total characters at 6 bytes each, the most
# JSON can spend on one (\\u0000), plus room for the rest of the request.
MAX_BODY_BYTES = 6 * settings.api_max_total_chars + 64 * 1024


class JobRequest(BaseModel):
    """`{"kind": "summary", "texts": ["...", "..."]}`; any other field is refused, URLs included."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[KINDS]  # type: ignore[valid-type]  # the kinds the task knows
    texts: list[str]

    @field_validator("texts")
    @classmethod
    def within_limits(cls, texts: list[str]) -> list[str]:
        if not texts:
            raise ValueError("send at least one text")
        if len(texts) > LIMITS["texts"]:
            raise ValueError(f"at most {LIMITS['texts']} texts per job (API_MAX_TEXTS); this job has {len(texts)}")
        for number, text in enumerate(texts, 1):
            if not text.strip():
                raise ValueError(f"text {number} is empty")
            if len(text) > LIMITS["text_chars"]:
                raise ValueError(f"text {number} has {len(text):,} characters; the limit is "
                                 f"{LIMITS['text_chars']:,} per text (API_MAX_TEXT_CHARS)")
        total = sum(len(text) for text in texts)
        if total > LIMITS["total_chars"]:
            raise ValueError(f"{total:,} characters in all; the limit is {LIMITS['total_chars']:,} "
                             "per job (API_MAX_TOTAL_CHARS)")
        return texts
