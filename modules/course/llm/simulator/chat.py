"""The bodies of chat completions: a whole response, or the chunks of a stream."""
from __future__ import annotations

import json
import re
import time

PIECE = re.compile(r"\s*\S+")  # a word with the spaces before it: joined back, the pieces give the text


def completion(rid: str, model: str, text: str, finish: str, usage: dict) -> dict:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": finish,
        }],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_simulator",
    }


def pieces(text: str) -> list[str]:
    return PIECE.findall(text)


def chunk(rid: str, model: str, delta: dict, finish: str | None = None) -> bytes:
    return event({
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    })


def usage_chunk(rid: str, model: str, usage: dict) -> bytes:
    return event({
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_simulator",
        "choices": [],
        "usage": usage,
    })


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
