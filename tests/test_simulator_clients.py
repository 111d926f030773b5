"""The simulator through the client libraries people use: LangChain's ChatOpenAI and LiteLLM.

Offline: LangChain's embeddings count tokens with tiktoken, which downloads its
encoding unless it finds it cached; LiteLLM ships that file, so the tests point
TIKTOKEN_CACHE_DIR at LiteLLM's copy (the simulator finds the same file itself).
LiteLLM reads its model price list from the internet unless told to use its own.
"""
from __future__ import annotations

import asyncio
import importlib.util
import math
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: no download

langchain_openai = pytest.importorskip("langchain_openai")
litellm = pytest.importorskip("litellm")

from simulator_fixtures import sim  # noqa: E402,F401  (fixture)

TIKTOKEN_FILES = Path(importlib.util.find_spec("litellm").origin).parent / "litellm_core_utils" / "tokenizers"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_FILES))
litellm.telemetry = False


class Ticket(BaseModel):
    category: str
    urgent: bool
    keywords: list[str]


@pytest.fixture(scope="module")
def chat(sim):
    return langchain_openai.ChatOpenAI(model="gpt-4o-mini", base_url=sim.base_url, api_key="sk-test",
                                       max_retries=0, timeout=10)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# --- LangChain ---------------------------------------------------------------------------------


def test_langchain_invoke_and_batch(chat):
    reply = chat.invoke("What is the sentiment of this review? I love it, works great.")
    assert reply.content == "positive"
    assert reply.usage_metadata["input_tokens"] > 0 and reply.usage_metadata["output_tokens"] > 0
    batch = chat.batch(["Summarize: Redis stores tasks. Workers run them.", "Explain event loops."])
    assert [b.content for b in batch] == [chat.invoke(p).content for p in
                                          ["Summarize: Redis stores tasks. Workers run them.", "Explain event loops."]]
    assert batch[0].content.startswith("Redis stores tasks.")


def test_langchain_stream_joins_to_the_invoke_text(chat):
    prompt = "Why does asyncio need an event loop?"
    pieces = [chunk.content for chunk in chat.stream(prompt)]
    assert len(pieces) > 5
    assert "".join(pieces) == chat.invoke(prompt).content


def test_langchain_with_structured_output_gets_a_parsed_object(chat):
    structured = chat.with_structured_output(Ticket)  # json_schema, strict, by default
    ticket = structured.invoke("Classify this support ticket: I was charged twice on my invoice, urgent!")
    assert isinstance(ticket, Ticket)
    assert ticket.keywords and all(isinstance(k, str) for k in ticket.keywords)
    assert ticket.urgent is True  # the field's name is in the message


def test_langchain_bind_tools_gets_a_tool_call(chat):
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return "sunny"

    reply = chat.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert reply.tool_calls[0]["args"] == {"city": "Paris"}
    plain = chat.bind_tools([get_weather]).invoke("Write a haiku about queues.")
    assert not plain.tool_calls and plain.content


def test_langchain_embeddings_sent_as_tokens_equal_the_text_vectors(sim):
    # check_embedding_ctx_length=True (the default) sends token arrays, not text.
    tokens = langchain_openai.OpenAIEmbeddings(model="text-embedding-3-small", base_url=sim.base_url,
                                               api_key="sk-test", max_retries=0)
    text = langchain_openai.OpenAIEmbeddings(model="text-embedding-3-small", base_url=sim.base_url,
                                             api_key="sk-test", max_retries=0, check_embedding_ctx_length=False)
    docs = ["The cat sat on the mat.", "Quarterly revenue grew by ten percent."]
    by_tokens, by_text = tokens.embed_documents(docs), text.embed_documents(docs)
    for a, b in zip(by_tokens, by_text):
        assert cosine(a, b) > 0.9999


# --- LiteLLM -----------------------------------------------------------------------------------


def lite(sim):
    return {"model": "openai/gpt-4o-mini", "api_base": sim.base_url, "api_key": "sk-test", "num_retries": 0}


def test_litellm_completion_and_acompletion(sim):
    messages = [{"role": "user", "content": "What is the sentiment of this review? Terrible, it broke."}]
    reply = litellm.completion(messages=messages, **lite(sim))
    assert reply.choices[0].message.content == "negative"
    assert reply.usage.prompt_tokens > 0
    again = asyncio.run(litellm.acompletion(messages=messages, **lite(sim)))
    assert again.choices[0].message.content == "negative"


def test_litellm_stream(sim):
    prompt = [{"role": "user", "content": "Explain connection pools."}]
    whole = litellm.completion(messages=prompt, **lite(sim)).choices[0].message.content
    chunks = list(litellm.completion(messages=prompt, stream=True, **lite(sim)))
    assert len(chunks) > 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole


def test_litellm_embedding(sim):
    texts = ["The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly revenue grew by ten percent."]
    response = litellm.embedding(model="openai/text-embedding-3-small", input=texts,
                                 api_base=sim.base_url, api_key="sk-test")
    a, b, c = (d["embedding"] for d in response.data)
    assert [len(v) for v in (a, b, c)] == [1536, 1536, 1536]
    assert cosine(a, b) > cosine(a, c) + 0.3  # similar texts are close, unrelated ones are not
