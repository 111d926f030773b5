"""Plausible, deterministic log probabilities for the tokens of an answer.

The chosen token is always the most likely one (logprob between -1 and 0, mostly near 0,
as a model answering at temperature 0 looks); the alternatives share the rest of the
probability mass, each half as likely as the one before.
"""
from __future__ import annotations

import math
import zlib

ALTERNATIVES = (" the", " a", ",", ".", " and", " to", " of", " is", " in", " it", " that", " for", " on",
                " with", " as", " this", " be", " are", " or", " an", " by")


def entry(token: str, position: int, top: int) -> dict:
    h = zlib.crc32(f"{position}|{token}".encode())
    chosen = -((h % 1000) / 1000) ** 3  # in (-1, 0], mostly close to 0
    rest = 1 - math.exp(chosen)
    alternatives = []
    if top:
        others = [t for t in ALTERNATIVES if t != token]
        start = h % len(others)
        for j in range(top - 1):
            alt = others[(start + j) % len(others)]
            p = max(rest * 0.5 ** (j + 1), 1e-12)
            alternatives.append({"token": alt, "logprob": round(math.log(p), 6), "bytes": list(alt.encode())})
    top_list = [{"token": token, "logprob": round(chosen, 6), "bytes": list(token.encode())}] + alternatives
    return {"token": token, "logprob": round(chosen, 6), "bytes": list(token.encode()),
            "top_logprobs": top_list[:top]}


def for_tokens(tokens: list[str], top: int, start: int = 0) -> list[dict]:
    return [entry(t, start + i, top) for i, t in enumerate(tokens)]
