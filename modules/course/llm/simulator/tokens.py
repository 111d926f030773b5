"""Token counts and token pieces, without a tokenizer file (the course runs offline).

Real tokenizers give about 4 tokens for every 3 English words. Here every word is one
token and every third word two, so counts, `max_tokens` cuts, stream chunks and
logprobs all agree on one split of the text.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

PIECE = re.compile(r"\s*\S+")  # a word with the spaces before it: joined back, the pieces give the text

# What the real API adds to every prompt (cookbook "How to count tokens with tiktoken"):
PER_MESSAGE = 3  # <|start|>, <|message|>, <|end|> around each message
PER_NAME = 1  # a message's `name`
REPLY_PRIMING = 3  # <|start|>assistant<|message|> that the answer starts with


def count(text: str) -> int:
    words = len(text.split())
    return words + words // 3


def count_tokens(text: str) -> int:
    """Tokens of an answer or an input: at least one."""
    return max(1, count(text))


@lru_cache(maxsize=4096)  # answers repeat (they are deterministic): cut each one once
def pieces(text: str) -> tuple[str, ...]:
    """The text cut into tokens: joined back they give the text, and there are count(text) of them."""
    out = []
    for i, word in enumerate(PIECE.findall(text)):
        if i % 3 == 2:
            middle = (len(word) + 1) // 2
            out += [word[:middle], word[middle:]]
        else:
            out.append(word)
    return tuple(out)


def words_for(max_tokens: int) -> int:
    """How many words fit in `max_tokens` (at least one)."""
    return max(1, max_tokens - max_tokens // 4)


def prompt_tokens(messages: list, tools: list | None = None) -> int:
    """What the real API counts for a prompt: each message's role and text, its overhead, the tools."""
    total = REPLY_PRIMING
    for m in messages:
        total += PER_MESSAGE + 1  # the role is one token
        total += count(message_text(m))
        if m.get("name"):
            total += PER_NAME + count(str(m["name"]))
        for call in m.get("tool_calls") or ():
            function = call.get("function") or {}
            total += count(str(function.get("name", ""))) + count(str(function.get("arguments", ""))) + 3
    if tools:
        total += count(json.dumps(tools).replace('"', " ").replace(",", " "))
    return total


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
