"""The JSON shapes of chat completions: a whole response, or the chunks of a stream."""
from __future__ import annotations

import json
import time

FINGERPRINT = "fp_simulator"


def usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def message(content: str | None, calls: list) -> dict:
    out = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        out["tool_calls"] = [tool_call(*c) for c in calls]
    return out


def completion(rid: str, model: str, choices: list[dict], usage_: dict) -> dict:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def chunk(rid: str, model: str, index: int, delta: dict, finish: str | None = None,
          logprobs: dict | None = None, with_usage: bool = False) -> bytes:
    data = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }
    if with_usage:
        data["usage"] = None  # as the real API: null on every chunk but the last one
    return event(data)


def usage_chunk(rid: str, model: str, usage_: dict) -> bytes:
    return event({
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": [],
        "usage": usage_,
    })


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
