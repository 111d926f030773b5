"""A rough token count: real tokenizers give about 4 tokens for every 3 English words."""
from __future__ import annotations


def count_tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 4 / 3))


def words_for(max_tokens: int) -> int:
    """How many words fit in `max_tokens` under the same estimate (at least one)."""
    return max(1, int(max_tokens * 3 / 4))
