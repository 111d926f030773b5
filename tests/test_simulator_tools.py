"""Tool calling through the real `openai` SDK (sync and async), as OpenAI answers it."""
from __future__ import annotations

import asyncio
import json

import jsonschema
import openai
import pytest
from openai import AsyncOpenAI

from simulator_fixtures import client, sim  # noqa: F401  (fixtures)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city", "strict": True,
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                   "properties": {"city": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}
ADD = {"type": "function", "function": {
    "name": "add_numbers", "description": "Add two numbers",
    "parameters": {"type": "object", "required": ["a", "b"],
                   "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "integer"}}}}}
TOOLS = [WEATHER, ADD]


def ask(client, content, **kwargs):
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}],
                                          tools=TOOLS, **kwargs)


def schema_of(name):
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


def test_auto_calls_the_tool_the_prompt_asks_for(client):
    reply = ask(client, "What's the weather in Paris, in fahrenheit?")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, schema_of("get_weather"))
    assert arguments == {"city": "Paris", "unit": "fahrenheit"}


def test_auto_answers_in_text_when_no_tool_is_asked_for(client):
    reply = ask(client, "Write a haiku about queues.")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


def test_required_always_calls_a_tool_and_none_never(client):
    required = ask(client, "Write a haiku about queues.", tool_choice="required")
    assert required.choices[0].finish_reason == "tool_calls"
    assert required.choices[0].message.tool_calls
    none = ask(client, "What's the weather in Paris?", tool_choice="none")
    assert none.choices[0].finish_reason == "stop" and none.choices[0].message.tool_calls is None


def test_named_function_is_the_one_called_with_arguments_from_the_prompt(client):
    reply = ask(client, "What is 12 plus 30?", tool_choice={"type": "function", "function": {"name": "add_numbers"}})
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "add_numbers"
    assert json.loads(call.function.arguments) == {"a": 12, "b": 30}


def test_several_tools_asked_for_are_called_in_parallel(client):
    prompt = "What's the weather in Rome, and add the numbers 2 and 5?"
    calls = ask(client, prompt).choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "add_numbers"]
    assert len({c.id for c in calls}) == 2
    for c in calls:
        jsonschema.validate(json.loads(c.function.arguments), schema_of(c.function.name))
    single = ask(client, prompt, parallel_tool_calls=False).choices[0].message.tool_calls
    assert len(single) == 1


def test_the_tool_result_comes_back_in_a_text_answer(client):
    question = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=question, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    follow_up = question + [first.choices[0].message.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps({"temperature": 18, "condition": "sunny"})}]
    final = client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    text = final.choices[0].message.content
    assert "18" in text and "sunny" in text


def test_a_tool_message_without_its_call_is_refused_as_openai_does(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", tools=TOOLS, messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}])
    assert "must be a response to a preceeding message with 'tool_calls'" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", tools=TOOLS, messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                  "function": {"name": "add_numbers", "arguments": "{}"}}]},
            {"role": "user", "content": "and?"}])
    assert "did not have response messages: call_1" in caught.value.message


def test_bad_tool_choice_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "hi", tool_choice={"type": "function", "function": {"name": "nope"}})
    assert caught.value.body["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       tool_choice="auto")
    assert caught.value.body["param"] == "tool_choice"


def test_strict_tool_schema_is_checked_as_openai_does(client):
    loose = {"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       tools=[loose])
    assert "'additionalProperties' is required to be supplied and to be false" in caught.value.message


def test_tool_calls_stream_in_chunks_like_openai(client):
    whole = ask(client, "What's the weather in Oslo?").choices[0].message.tool_calls[0]
    chunks = list(ask(client, "What's the weather in Oslo?", stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    first = next(d.tool_calls[0] for d in deltas if d.tool_calls)
    assert first.id == whole.id and first.function.name == "get_weather" and first.function.arguments == ""
    pieces = [d.tool_calls[0].function.arguments for d in deltas if d.tool_calls]
    assert len(pieces) > 2  # the arguments arrive in several chunks
    assert "".join(pieces) == whole.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_async_client_gets_the_same_tool_calls(sim, client):
    async def main():
        async with AsyncOpenAI(base_url=sim.base_url, api_key="anything", max_retries=0) as aclient:
            return await asyncio.gather(*(aclient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"What's the weather in {city}?"}],
                tools=TOOLS) for city in ("Paris", "Lima")))
    replies = asyncio.run(main())
    assert [json.loads(r.choices[0].message.tool_calls[0].function.arguments)["city"] for r in replies] == \
        ["Paris", "Lima"]
    sync = ask(client, "What's the weather in Lima?").choices[0].message.tool_calls[0]
    assert replies[1].choices[0].message.tool_calls[0].function.arguments == sync.function.arguments
