"""JSON answers and the sampling options, through the real `openai` SDK (sync and async)."""
from __future__ import annotations

import asyncio
import json
import math
from typing import Literal

import jsonschema
import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from simulator_fixtures import client, sim  # noqa: F401  (fixtures)

REVIEW = "I love this phone: the battery is excellent and the camera is great."


class Address(BaseModel):
    city: str
    postcode: str


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    summary: str
    keywords: list[str]
    stars: int
    address: Address
    tags: list[Literal["battery", "camera", "screen", "price"]]
    note: str | None


def user(content):
    return [{"role": "user", "content": content}]


def test_json_object_answers_a_json_object(client):
    reply = client.chat.completions.create(model="gpt-4o-mini", response_format={"type": "json_object"},
                                           messages=user(f"Give the sentiment of this review as JSON: {REVIEW}"))
    assert json.loads(reply.choices[0].message.content) == {"sentiment": "positive"}


def test_json_object_without_the_word_json_is_a_400_as_at_openai(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", response_format={"type": "json_object"},
                                       messages=user("Give the sentiment."))
    assert "must contain the word 'json'" in caught.value.message
    assert caught.value.body["param"] == "messages"


def test_parse_with_a_pydantic_model_gets_a_parsed_object(client):
    reply = client.chat.completions.parse(model="gpt-4o-mini", response_format=Review,
                                          messages=user(f"Review 5 stars, sent from Berlin: {REVIEW}"))
    review = reply.choices[0].message.parsed
    assert isinstance(review, Review)
    assert review.sentiment == "positive"
    assert review.stars == 5
    assert review.address.city == "Berlin"
    assert set(review.tags) >= {"battery", "camera"}


def test_json_schema_answers_validate_against_the_schema(client):
    schema = {"type": "object", "additionalProperties": False,
              "required": ["id", "score", "labels", "items", "kind", "when", "ok"],
              "properties": {
                  "id": {"type": "string", "format": "uuid"},
                  "score": {"type": "number", "minimum": 0.5, "maximum": 0.9},
                  "labels": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
                  "items": {"type": "array", "minItems": 2, "items": {
                      "type": "object", "additionalProperties": False, "required": ["n"],
                      "properties": {"n": {"type": "integer", "minimum": 10}}}},
                  "kind": {"enum": ["a", "b"]},
                  "when": {"type": "string", "format": "date"},
                  "ok": {"type": ["boolean", "null"]}}}
    reply = client.chat.completions.create(model="gpt-4o", messages=user("Fill the form."), response_format={
        "type": "json_schema", "json_schema": {"name": "form", "strict": True, "schema": schema}})
    value = json.loads(reply.choices[0].message.content)
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_strict_schema_missing_required_key_is_refused_as_openai_does(client):
    schema = {"type": "object", "additionalProperties": False, "required": ["a"],
              "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), response_format={
            "type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": schema}})
    assert "Invalid schema for response_format 'x'" in caught.value.message
    assert "Missing 'b'" in caught.value.message


def test_n_choices_differ_and_count_in_usage(client):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("Explain event loops."), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) > 1
    one = client.chat.completions.create(model="gpt-4o-mini", messages=user("Explain event loops."))
    assert reply.choices[0].message.content == one.choices[0].message.content
    assert reply.usage.completion_tokens > one.usage.completion_tokens


def test_seed_repeats_and_another_seed_changes_the_wording(client):
    def text(seed):
        return client.chat.completions.create(model="gpt-4o-mini", messages=user("Explain back pressure."),
                                              seed=seed).choices[0].message.content
    assert text(1) == text(1)
    assert len({text(s) for s in range(1, 6)}) > 1


def test_logprobs_are_plausible_and_deterministic(client):
    def ask():
        return client.chat.completions.create(model="gpt-4o-mini", messages=user("Explain queues."),
                                              logprobs=True, top_logprobs=3)
    reply = ask()
    entries = reply.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == reply.choices[0].message.content
    assert len(entries) == reply.usage.completion_tokens
    for e in entries:
        assert -1 <= e.logprob <= 0
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        assert sum(math.exp(t.logprob) for t in e.top_logprobs) <= 1.0001
    assert ask().choices[0].logprobs == reply.choices[0].logprobs
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), top_logprobs=2)
    assert caught.value.body["param"] == "top_logprobs"


def test_stop_cuts_before_the_stop_sequence(client):
    whole = client.chat.completions.create(model="gpt-4o", messages=user("Describe connection pools."))
    text = whole.choices[0].message.content
    word = text.split()[3]
    cut = client.chat.completions.create(model="gpt-4o", messages=user("Describe connection pools."), stop=[word])
    assert cut.choices[0].message.content == text[: text.index(word)]
    assert cut.choices[0].finish_reason == "stop"


def test_max_completion_tokens_cuts_with_length_and_parse_says_so(client):
    reply = client.chat.completions.create(model="gpt-4o", messages=user("Describe connection pools."),
                                           max_completion_tokens=5)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 5
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model="gpt-4o-mini", response_format=Review, max_tokens=3,
                                      messages=user(REVIEW))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), max_tokens=1_000_000)
    assert caught.value.body["param"] == "max_tokens"


def test_async_parse_and_stream_with_logprobs(sim):
    async def main():
        async with AsyncOpenAI(base_url=sim.base_url, api_key="anything", max_retries=0) as aclient:
            parsed = await aclient.chat.completions.parse(model="gpt-4o-mini", response_format=Review,
                                                          messages=user(REVIEW))
            stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=user("Explain queues."),
                                                           stream=True, logprobs=True)
            chunks = [c async for c in stream]
            return parsed, chunks
    parsed, chunks = asyncio.run(main())
    assert parsed.choices[0].message.parsed.sentiment == "positive"
    tokens = [c.choices[0].logprobs.content[0].token for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(tokens) == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
