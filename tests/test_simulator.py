"""The simulated LLM server, tested through the real `openai` SDK against a real process."""
from __future__ import annotations

import json
import math
import time
import urllib.request

import openai
import pytest
from openai import OpenAI

from course.llm.simulator.launcher import start
from simulator_fixtures import client, sim  # noqa: F401  (fixtures)

REVIEW = "I love this product, works great and the battery life is excellent."


def ask(client, content, model="gpt-4o-mini", system=None, **kwargs):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return client.chat.completions.create(model=model, messages=messages, **kwargs)


def admin(sim, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(sim.url + path, data=data)) as response:
        return json.loads(response.read())


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))  # the vectors are already unit length


# --- chat completions -------------------------------------------------------------------


def test_chat_completion_has_openai_shape_and_usage(client):
    reply = ask(client, "Explain what an event loop does.")
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.choices[0].message.role == "assistant"
    assert len(reply.choices[0].message.content.split()) >= 5
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage.prompt_tokens >= 1 and usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_same_request_gets_same_answer(client):
    first = ask(client, "How do I write a retry loop?").choices[0].message.content
    second = ask(client, "How do I write a retry loop?").choices[0].message.content
    other = ask(client, "What is a Celery worker for?").choices[0].message.content
    assert first == second
    assert first != other


def test_sentiment_follows_the_text(client):
    assert ask(client, f"What is the sentiment of this review? {REVIEW}").choices[0].message.content == "positive"
    negative = ask(client, "It broke after a day, terrible and useless.", system="Reply with the sentiment only.")
    assert negative.choices[0].message.content == "negative"


def test_summary_is_short_and_taken_from_the_text(client):
    text = ("Asyncio runs many network calls on one thread. It switches tasks at every await. "
            "Celery moves slow jobs to worker processes. Redis carries the messages between them.")
    summary = ask(client, f"Summarize this text:\n{text}").choices[0].message.content
    assert "Asyncio runs many network calls" in summary
    assert len(summary) < len(text)


def test_keywords_are_frequent_words_without_stop_words(client):
    text = "Redis stores tasks. Celery workers read tasks from Redis and run the tasks."
    words = ask(client, f"Extract keywords: {text}").choices[0].message.content.split(", ")
    assert words[0] == "tasks"
    assert "redis" in words and "celery" in words
    assert "the" not in words and 3 <= len(words) <= 6


def test_classification_picks_one_of_the_listed_labels(client):
    system = "Classify the support ticket. Categories: billing, technical, account"
    assert ask(client, "I was charged twice on my invoice", system=system).choices[0].message.content == "billing"
    assert ask(client, "I forgot my password and cannot log in", system=system).choices[0].message.content == "account"


def test_max_tokens_truncates_with_finish_reason_length(client):
    reply = ask(client, "Tell me about asyncio tasks and futures.", max_tokens=4)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens <= 4


def test_large_model_answers_longer_than_small_model(client):
    small = ask(client, "Describe connection pools.", model="gpt-4o-mini").usage.completion_tokens
    large = ask(client, "Describe connection pools.", model="gpt-4o").usage.completion_tokens
    assert large > small


def test_stream_assembles_to_the_non_stream_text_and_ends_with_usage(client):
    prompt = "Why do we use a semaphore with asyncio.gather?"
    whole = ask(client, prompt).choices[0].message.content
    chunks = list(ask(client, prompt, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert len(chunks) > 5  # one chunk per word, not one big chunk
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


# --- embeddings ------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_of_the_model_size(client):
    response = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"])
    assert [d.index for d in response.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in response.data)
    assert all(math.isclose(cosine(d.embedding, d.embedding), 1.0, rel_tol=1e-4) for d in response.data)
    assert response.usage.prompt_tokens >= 2
    large = client.embeddings.create(model="text-embedding-3-large", input="hello", dimensions=256)
    assert len(large.data[0].embedding) == 256


def test_similar_texts_are_closer_than_unrelated_ones(client):
    texts = ["The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly revenue grew by ten percent."]
    a, b, c = (d.embedding for d in client.embeddings.create(model="text-embedding-3-small", input=texts).data)
    assert cosine(a, b) > cosine(a, c) + 0.3


def test_base64_default_and_float_give_the_same_vector(client):
    # The SDK asks for base64 when no encoding_format is given, and decodes float32 itself.
    default = client.embeddings.create(model="text-embedding-ada-002", input="same text").data[0].embedding
    floats = client.embeddings.create(model="text-embedding-ada-002", input="same text",
                                      encoding_format="float").data[0].embedding
    assert len(default) == len(floats) == 1536
    assert max(abs(x - y) for x, y in zip(default, floats)) < 1e-6


def test_embedding_with_a_chat_model_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="gpt-4o-mini", input="hello")


# --- errors ----------------------------------------------------------------------------


def test_missing_messages_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.body["param"] == "messages"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "hi", model="gpt-9")
    assert caught.value.code == "model_not_found"
    assert "`gpt-9` does not exist" in caught.value.message


def test_models_can_be_listed_and_retrieved(client):
    names = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= names
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


def test_wrong_api_key_is_rejected_when_a_key_is_required():
    with start(speed=50, extra_args=["--require-key", "sk-right"]) as locked:
        with OpenAI(base_url=locked.base_url, api_key="sk-wrong-key", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError) as caught:
                ask(wrong, "hi")
        assert caught.value.code == "invalid_api_key"
        with OpenAI(base_url=locked.base_url, api_key="sk-right", max_retries=0) as right:
            assert ask(right, "hi").choices[0].message.content


def test_rate_limit_header_gives_429_with_retry_after(client):
    limited = {"x-sim-rpm": "61"}  # a limit of its own: capacity 1, so the second call is refused
    ask(client, "first", extra_headers=limited)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "second", extra_headers=limited)
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert 0 < float(headers["retry-after-ms"]) <= 1000
    assert headers["x-ratelimit-limit-requests"] == "61"
    assert caught.value.code == "rate_limit_exceeded"


def test_fail_first_fails_exactly_k_times_then_succeeds(client):
    headers = {"x-sim-fail-first": "2", "x-sim-fail-key": "retry-demo-1"}
    outcomes = []
    for _ in range(4):
        try:
            ask(client, "hi", extra_headers=headers)
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["500", "500", "ok", "ok"]


def test_error_rate_fails_about_that_fraction(client):
    failures = 0
    for _ in range(200):
        try:
            ask(client, "hi", extra_headers={"x-sim-error-rate": "0.3", "x-sim-latency": "0"})
        except openai.InternalServerError:
            failures += 1
    assert 35 <= failures <= 85


def test_hang_times_out_on_the_client_side(client):
    began = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hi", extra_headers={"x-sim-fault": "hang"}, timeout=0.5)
    assert time.monotonic() - began < 3


def test_hung_request_ends_on_the_server_when_the_client_leaves(sim, client):
    time.sleep(0.3)  # an earlier test's hung request may still be on its way to its 504
    before = admin(sim, "/sim/stats")["by_status"].get("504", 0)
    with pytest.raises(openai.APITimeoutError):
        ask(client, "hi", extra_headers={"x-sim-fault": "hang"}, timeout=0.2)
    for _ in range(20):  # the server notices the disconnect and drops the request (counted as 504)
        if admin(sim, "/sim/stats")["by_status"].get("504", 0) > before:
            break
        time.sleep(0.05)
    assert admin(sim, "/sim/stats")["by_status"].get("504", 0) == before + 1


def test_outage_answers_503_then_recovers(sim, client):
    admin(sim, "/sim/outage", {"seconds": 0.4})
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "hi")
    assert caught.value.status_code == 503
    time.sleep(0.5)
    assert ask(client, "hi").choices[0].message.content


def test_outage_window_from_the_command_line_answers_503():
    with start(speed=50, extra_args=["--outage", "0-30"]) as down:
        with OpenAI(base_url=down.base_url, api_key="x", max_retries=0) as c:
            with pytest.raises(openai.InternalServerError) as caught:
                ask(c, "hi")
    assert caught.value.status_code == 503


def test_stats_count_requests_by_status_and_model(sim, client):
    before = admin(sim, "/sim/stats")
    ask(client, "counted", model="gpt-4.1-mini")
    with pytest.raises(openai.NotFoundError):
        ask(client, "counted", model="no-such-model")
    after = admin(sim, "/sim/stats")
    assert after["requests"] == before["requests"] + 2
    assert after["by_status"]["404"] == before["by_status"].get("404", 0) + 1
    assert after["by_model"]["gpt-4.1-mini"] == before["by_model"].get("gpt-4.1-mini", 0) + 1


# --- latency ---------------------------------------------------------------------------


def timed(call):
    began = time.monotonic()
    call()
    return time.monotonic() - began


def test_large_model_is_slower_than_small_model():
    with start(speed=4) as slow_sim, OpenAI(base_url=slow_sim.base_url, api_key="x", max_retries=0) as c:
        small = timed(lambda: ask(c, "Describe connection pools.", model="gpt-4o-mini"))
        large = timed(lambda: ask(c, "Describe connection pools.", model="gpt-4o"))
    assert large > small * 1.5


def test_fixed_latency_header_sets_the_request_time(client):
    assert timed(lambda: ask(client, "hi", extra_headers={"x-sim-latency": "0.3"})) >= 0.3
    assert timed(lambda: ask(client, "hi", extra_headers={"x-sim-latency": "0"})) < 0.25


def test_stop_ends_the_process_cleanly():
    running = start(speed=50)
    running.stop()
    assert running.process.returncode == 0
