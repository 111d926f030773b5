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
