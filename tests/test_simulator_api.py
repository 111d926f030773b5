"""The Responses API, the legacy completions route, validation, headers and token counts,
through the real `openai` SDK (sync and async) against a running simulator."""
from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from course.llm.simulator import tokenizer
from course.llm.simulator.launcher import start
from simulator_fixtures import client, sim  # noqa: F401  (fixtures)


def user(content):
    return [{"role": "user", "content": content}]


def raw(sim, method, path, body=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(sim.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as failure:
        return failure.code, dict(failure.headers), json.loads(failure.read())


# --- the Responses API ---------------------------------------------------------------------------


def test_responses_create_gives_output_text_like_chat(client):
    prompt = "Summarize this text: Asyncio runs many calls on one thread. Celery runs jobs in workers."
    response = client.responses.create(model="gpt-4o-mini", input=prompt)
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=user(prompt))
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text == chat.choices[0].message.content
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_responses_instructions_are_a_system_message(client):
    response = client.responses.create(model="gpt-4o-mini", instructions="Reply with the sentiment only.",
                                       input="It broke after a day, terrible.")
    assert response.output_text == "negative"
    assert response.instructions == "Reply with the sentiment only."


def test_responses_stream_sends_the_typed_events(client):
    events = list(client.responses.create(model="gpt-4o-mini", input="Explain semaphores.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    with client.responses.stream(model="gpt-4o-mini", input="Explain semaphores.") as stream:
        assert stream.get_final_response().output_text == text


def test_responses_max_output_tokens_makes_it_incomplete(client):
    response = client.responses.create(model="gpt-4o", input="Describe connection pools.", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16


def test_responses_function_tools_and_structured_text(client):
    tool = {"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    response = client.responses.create(model="gpt-4o-mini", input="What's the weather in Oslo?", tools=[tool])
    (call,) = response.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    follow = client.responses.create(model="gpt-4o-mini", tools=[tool], input=[
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain, 7 degrees"}])
    assert "rain, 7 degrees" in follow.output_text
    schema = {"type": "object", "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative"]}},
              "required": ["sentiment"], "additionalProperties": False}
    structured = client.responses.create(model="gpt-4o-mini", input="I love it.", text={"format": {
        "type": "json_schema", "name": "s", "schema": schema, "strict": True}})
    assert json.loads(structured.output_text) == {"sentiment": "positive"}


def test_responses_what_cannot_be_simulated_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="hi", previous_response_id="resp_123")
    assert caught.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="hi", tools=[{"type": "web_search"}])
    assert "not supported by the course's simulated LLM" in caught.value.message


def test_responses_share_limits_and_faults_with_chat(client):
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4o-mini", input="hi", extra_headers={"x-sim-fault": "error"})
    limited = {"x-sim-rpm": "62"}
    client.responses.create(model="gpt-4o-mini", input="hi", extra_headers=limited)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-4o-mini", input="hi", extra_headers=limited)
    began = time.monotonic()
    client.responses.create(model="gpt-4o-mini", input="hi", extra_headers={"x-sim-latency": "0.3"})
    assert time.monotonic() - began >= 0.3


def test_async_responses(sim):
    async def main():
        async with AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as aclient:
            return await asyncio.gather(*(aclient.responses.create(model="gpt-4o-mini", input=f"Explain {t}.")
                                          for t in ("queues", "locks")))
    first, second = asyncio.run(main())
    assert first.output_text and second.output_text and first.output_text != second.output_text


def test_legacy_completions_is_a_clear_error(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="gpt-4o-mini", prompt="hi")
    assert "not supported in the v1/completions endpoint" in caught.value.message


# --- validation ----------------------------------------------------------------------------------


def test_unknown_route_and_method_answer_json_errors(sim):
    status, _, body = raw(sim, "GET", "/v1/nothing")
    assert status == 404 and body["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    status, headers, body = raw(sim, "GET", "/v1/chat/completions")
    assert status == 405 and body["error"]["type"] == "invalid_request_error"
    assert headers["allow"] == "POST"


@pytest.mark.parametrize("change, param", [
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"n": 0}, "n"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": []}, "messages"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"frobnicate": 1}, "frobnicate"),
])
def test_invalid_values_are_a_400_naming_the_parameter(sim, change, param):
    status, _, body = raw(sim, "POST", "/v1/chat/completions",
                          {"model": "gpt-4o-mini", "messages": user("hi"), **change})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param


def test_unknown_parameter_through_the_sdk(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), extra_body={"temprature": 1})
    assert caught.value.body["message"] == "Unrecognized request argument supplied: temprature"


def test_more_than_2048_embedding_inputs_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=["x"] * 2049)
    assert caught.value.body["param"] == "input"
    assert len(client.embeddings.create(model="text-embedding-3-small", input=["x"] * 2048).data) == 2048


# --- headers -------------------------------------------------------------------------------------


def test_every_answer_has_a_request_id(client, sim):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    assert re.fullmatch(r"req_[0-9a-f]{32}", reply._request_id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.request_id.startswith("req_")
    assert raw(sim, "GET", "/v1/nothing")[1]["x-request-id"].startswith("req_")


def test_rate_limit_headers_report_the_default_tier_when_no_limit_is_set(sim):
    with OpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as fresh:
        first = fresh.chat.completions.with_raw_response.create(model="gpt-4.1", messages=user("hi"))
        second = fresh.chat.completions.with_raw_response.create(model="gpt-4.1", messages=user("hi"))
    h1, h2 = first.headers, second.headers
    assert h1["x-ratelimit-limit-requests"] == "500" and h1["x-ratelimit-limit-tokens"] == "30000"
    assert int(h2["x-ratelimit-remaining-requests"]) == int(h1["x-ratelimit-remaining-requests"]) - 1
    used = first.parse().usage.prompt_tokens + first.parse().usage.completion_tokens
    assert int(h1["x-ratelimit-remaining-tokens"]) == 30000 - used
    assert re.fullmatch(r"\d+ms|[\d.]+s|\d+m[\d.]+s", h2["x-ratelimit-reset-requests"])


def test_429_names_the_limit_with_correct_numbers(client):
    limited = {"x-sim-rpm": "120"}  # 2 per second: a burst of 2 passes, the third is refused
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("a"), extra_headers=limited)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("a"), extra_headers=limited)
    message, headers = caught.value.message, caught.value.response.headers
    assert "on requests per min (RPM): Limit 120, Used 2, Requested 1." in message
    assert caught.value.body["type"] == "requests"
    assert headers["x-ratelimit-limit-requests"] == "120" and headers["x-ratelimit-remaining-requests"] == "118"
    wait_ms = int(headers["retry-after-ms"])
    assert 0 < wait_ms <= 500 and headers["retry-after"] == "1"
    assert headers["x-ratelimit-reset-requests"].endswith("ms")
    assert int(headers["x-ratelimit-reset-requests"][:-2]) >= wait_ms  # full again after the next one fits


def test_429_without_retry_after_when_asked(client):
    limited = {"x-sim-rpm": "61", "x-sim-omit-retry-after": "1"}
    client.chat.completions.create(model="gpt-4o-mini", messages=user("b"), extra_headers=limited)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("b"), extra_headers=limited)
    headers = caught.value.response.headers
    assert "retry-after" not in headers and "retry-after-ms" not in headers
    assert headers["x-ratelimit-reset-requests"]


def test_omit_retry_after_setting_applies_to_a_fraction_of_429s():
    with start(speed=50, extra_args=["--omit-retry-after", "0.5"]) as s:
        with OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
            omitted = 0
            for i in range(40):
                c.chat.completions.create(model="gpt-4o-mini", messages=user("c"), extra_headers={"x-sim-rpm": "61"}) \
                    if i == 0 else None
                try:
                    c.chat.completions.create(model="gpt-4o-mini", messages=user("c"),
                                              extra_headers={"x-sim-rpm": "61"})
                except openai.RateLimitError as e:
                    omitted += "retry-after" not in e.response.headers
    assert 8 <= omitted <= 32


# --- token counts and embeddings -----------------------------------------------------------------


def test_prompt_tokens_include_the_per_message_overhead(client):
    one = client.chat.completions.create(model="gpt-4o-mini", messages=user("hello")).usage.prompt_tokens
    two = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "hello"}, {"role": "user", "content": "hello"}]).usage.prompt_tokens
    assert one == 1 + 4 + 3  # one word, 3 per message + the role, 3 to prime the reply
    assert two - one == 1 + 4


@pytest.mark.skipif(not tokenizer.available(), reason="no cl100k_base file on this machine to decode tokens")
def test_embedding_token_arrays_give_the_vector_of_their_text(client):
    import os

    import tiktoken  # installed with langchain-openai; pointed at the file the simulator found
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tokenizer.location().parent))
    text = "Background jobs keep the web request fast."
    encoded = tiktoken.get_encoding("cl100k_base").encode(text)
    by_tokens = client.embeddings.create(model="text-embedding-3-small", input=[encoded]).data[0].embedding
    by_text = client.embeddings.create(model="text-embedding-3-small", input=text).data[0].embedding
    assert max(abs(a - b) for a, b in zip(by_tokens, by_text)) < 1e-6
    usage = client.embeddings.create(model="text-embedding-3-small", input=[encoded]).usage
    assert usage.prompt_tokens == len(encoded)
