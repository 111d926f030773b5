"""Token arrays back to text, for embeddings sent as tokens (what LangChain sends by default).

OpenAI's embedding models read cl100k_base tokens. Decoding needs only that encoding's
file (one base64 token per line, in rank order). The course cannot download it
offline, so the simulator looks where tiktoken keeps it (TIKTOKEN_CACHE_DIR,
DATA_GYM_CACHE_DIR, tiktoken's temp folder) and in the copy the LiteLLM package ships.
Without the file, token arrays cannot be decoded (see docs/simulator.md).
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import tempfile
from functools import lru_cache
from pathlib import Path

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def candidates() -> list[Path]:
    """Where a cl100k_base file may already be on this machine, first match wins."""
    name = hashlib.sha1(CL100K_URL.encode()).hexdigest()  # tiktoken's cache file name
    folders = [os.environ.get("TIKTOKEN_CACHE_DIR"), os.environ.get("DATA_GYM_CACHE_DIR"),
               os.path.join(tempfile.gettempdir(), "data-gym-cache")]
    spec = importlib.util.find_spec("litellm")  # found without importing it (that takes seconds)
    if spec and spec.origin:
        folders.append(os.path.join(os.path.dirname(spec.origin), "litellm_core_utils", "tokenizers"))
    return [Path(folder) / name for folder in folders if folder]


def location() -> Path | None:
    """The first checked cl100k_base file found, or None."""
    for path in candidates():
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() == CL100K_SHA256:
                return path
        except OSError:
            continue
    return None


@lru_cache(maxsize=1)
def cl100k() -> list[bytes] | None:
    """The bytes of every cl100k_base token by rank, or None when no checked copy is found."""
    path = location()
    if path is not None:
        data = path.read_bytes()
        table = []
        for line in data.splitlines():
            token, _, rank = line.partition(b" ")
            if int(rank) != len(table):
                return None
            table.append(base64.b64decode(token))
        return table
    return None


def decode(tokens: list[int]) -> str | None:
    """The text a cl100k_base token array encodes; None when it cannot be decoded here."""
    table = cl100k()
    if table is None or not all(isinstance(t, int) and 0 <= t < len(table) for t in tokens):
        return None
    return b"".join(table[t] for t in tokens).decode("utf-8", errors="replace")


def available() -> bool:
    return cl100k() is not None
