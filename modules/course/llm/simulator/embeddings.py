"""Deterministic embedding vectors where similar texts land close together.

Feature hashing: every lowercase word and every character trigram is hashed to one
position with a sign of +1 or -1. Texts sharing words and word pieces share
positions, so their cosine similarity is high; unrelated texts are near orthogonal.
"""
from __future__ import annotations

import array
import base64
import math
import re
import sys
import zlib
from functools import lru_cache

from . import tokenizer, validation
from .errors import bad
from .models import Model
from .reply import Reply
from .tokens import count_tokens

WORD = re.compile(r"\w+")


def features(text: str):
    for word in WORD.findall(text.lower()):
        yield word, 1.0
        padded = f" {word} "
        for i in range(len(padded) - 2):
            yield "#" + padded[i : i + 3], 0.5


@lru_cache(maxsize=4096)
def embed(text: str, dimensions: int) -> tuple[float, ...]:
    vector = [0.0] * dimensions
    for feature, weight in features(text):
        h = zlib.crc32(feature.encode())
        sign = 1.0 if (h >> 31) & 1 else -1.0  # top bit for the sign, the rest for the position
        vector[(h & 0x7FFFFFFF) % dimensions] += sign * weight
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:  # text with no word characters: a fixed unit vector
        vector[0], norm = 1.0, 1.0
    return tuple(x / norm for x in vector)


def to_base64(vector: tuple[float, ...]) -> str:
    """Little-endian float32 bytes in base64: what the SDK asks for by default and decodes."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def as_text(item: str | list[int]) -> tuple[str, int]:
    """An input as text, with its token count. Token arrays are decoded when the tokenizer file
    is here (see tokenizer.py), so they give the vector of the text they encode; otherwise
    their numbers are embedded as words: deterministic, and texts sharing tokens stay close."""
    if isinstance(item, str):
        return item, count_tokens(item)
    text = tokenizer.decode(item)
    return (text if text is not None else " ".join(map(str, item))), len(item)


def plan(body: dict, model: Model) -> Reply:
    """POST /v1/embeddings: checked inputs turned into vectors (base64 or floats) and usage."""
    items = validation.embedding_inputs(body)
    dims = body.get("dimensions")
    if dims is not None:
        if not model.custom_dimensions:
            raise bad("This model does not support specifying dimensions.", param="dimensions")
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= model.dimensions:
            raise bad(f"Invalid 'dimensions': must be an integer from 1 to {model.dimensions}.", param="dimensions",
                      code="invalid_value")
    else:
        dims = model.dimensions
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad(f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                  param="encoding_format", code="invalid_value")
    texts, counts = zip(*(as_text(item) for item in items))
    for i, n in enumerate(counts):
        if n > validation.MAX_EMBEDDING_INPUT_TOKENS:
            raise bad(f"This model's maximum context length is {validation.MAX_EMBEDDING_INPUT_TOKENS} tokens, "
                      f"however you requested {n} tokens ({n} in your prompt; 0 for the completion). Please "
                      "reduce your prompt; or completion length.", param=f"input[{i}]",
                      code="context_length_exceeded")
    total = sum(counts)
    if total > validation.MAX_EMBEDDING_REQUEST_TOKENS:
        raise bad(f"Requested {total} tokens, max {validation.MAX_EMBEDDING_REQUEST_TOKENS} tokens per request",
                  param="input", code="max_tokens_per_request")
    encode = to_base64 if encoding == "base64" else list

    def answer() -> dict:
        data = [{"object": "embedding", "index": i, "embedding": encode(embed(t, dims))} for i, t in enumerate(texts)]
        return {"object": "list", "data": data, "model": model.name,
                "usage": {"prompt_tokens": total, "total_tokens": total}}

    return Reply(model, total, 0, rate_cost=total, units=len(texts), body=answer)
