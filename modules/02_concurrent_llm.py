"""Lesson 02: concurrent LLM calls

Run:  make lesson N=02      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
You learn: why ten LLM calls can take about the time of one, how to batch, compare models, chain
dependent calls, stay under a rate limit without losing a call, and fall back when a model is slow.

Every call goes through the real `openai` SDK (`AsyncOpenAI`). With no key set it talks to the
course's simulated LLM; set OPENAI_API_KEY (or OPENAI_BASE_URL) in .env and the same code runs
against a real model.

Recap:
- Independent calls go out together under gather; dependent ones are awaited in order.
- Batch what the API lets you batch (embeddings): fewer round trips beat more concurrency.
- Space calls under the rate limit, honour Retry-After on a 429, back off with jitter on a 5xx.
- Give every call a deadline and a fallback, and keep each failure in its own slot.
- Tool calls and structured output are calls like any other: run them side by side, and check
  what comes back before you use it.
- Make the async client inside the one event loop that uses it.
"""
import asyncio
import json
import time
from collections import Counter
from typing import Literal

import openai
from pydantic import BaseModel, Field, ValidationError

from course import llm
from course.llm import retry
from course.runner import run, shows, timer
from course.samples import ARTICLE, REVIEWS


async def ask(client, model, prompt, **options):
    """One chat completion; returns the answer text."""
    response = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **options)
    return response.choices[0].message.content


async def sequential_vs_concurrent(client, settings):
    """Ten calls one after another, then all at once

    The model spends most of a call generating tokens far away; our process just waits.
    `gather` sends all the requests at once, so the batch takes about as long as its slowest
    call.

    Result: {speedup_x} faster (ideal {ideal_speedup_x}: the slowest call alone). First
    answer: {first_answer}
    """
    model = settings.chat_model
    prompts = [f"Sentiment of: {review}" for review in REVIEWS]
    await ask(client, model, "ping")  # opens the connection for both runs

    latencies = []
    with timer() as one_by_one:
        for prompt in prompts:
            with timer() as call:
                await ask(client, model, prompt)
            latencies.append(call.seconds)

    with timer() as together:
        answers = await asyncio.gather(
            *(ask(client, model, prompt) for prompt in prompts))

    return {"one_by_one_s": one_by_one.seconds,
            "gather_s": together.seconds,
            "ideal_gather_s": max(latencies),
            "calls": len(prompts),
            "speedup_x": one_by_one.seconds / together.seconds,
            "ideal_speedup_x": one_by_one.seconds / max(latencies),
            "first_answer": answers[0]}


async def batch_embeddings(client, settings):
    """Batch embeddings: one request with many inputs

    The embeddings endpoint takes a list. Many texts in one request pay the network overhead
    once instead of once per text.

    Result: batching was {speedup_x} faster and returned {vectors} vectors of {dimensions}
    dimensions.
    """
    texts, model = REVIEWS * 2, settings.embedding_model

    with timer() as one_per_text:
        for text in texts:
            await client.embeddings.create(model=model, input=text)

    with timer() as batched:
        response = await client.embeddings.create(model=model, input=texts)

    return {"one_request_per_text_s": one_per_text.seconds,
            "one_batched_request_s": batched.seconds,
            "texts": len(texts),
            "speedup_x": one_per_text.seconds / batched.seconds,
            "vectors": len(response.data),
            "dimensions": len(response.data[0].embedding)}


async def compare_models(client, settings):
    """The same prompt to two models, in parallel

    Asking a fast small model and a slow large one at once costs the time of the slower,
    and shows the trade-off side by side.

    Result: both answers after {both_s}; one after the other would take {sum_of_both_s}.
    """
    prompt = f"Summarise this article in two sentences: {ARTICLE}"

    async def timed_answer(model):
        with timer() as call:
            response = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}])
        return {"model": model, "seconds_s": call.seconds,
                "output_tokens": response.usage.completion_tokens,
                "answer": response.choices[0].message.content}

    with timer() as both:
        rows = await asyncio.gather(timed_answer(settings.chat_model),
                                    timed_answer(settings.large_model))

    return {"answers": rows, "both_s": both.seconds,
            "sum_of_both_s": sum(row["seconds_s"] for row in rows)}


async def chained_calls(client, settings):
    """Dependent calls in order, independent ones alongside

    Keywords are taken from the summary, so that pair must run in order. The sentiment does
    not depend on either, so it runs at the same time as the whole chain.

    Result: three calls, two of them chained, in {total_s}: about the time of the chain.
    """
    model = settings.chat_model

    async def summary_then_keywords():
        summary = await ask(client, model, f"Summarise: {ARTICLE}")
        keywords = await ask(client, model, f"Keywords of: {summary}")
        return summary, keywords

    with timer() as total:
        (summary, keywords), sentiment = await asyncio.gather(
            summary_then_keywords(),
            ask(client, model, f"What is the sentiment of: {ARTICLE}"),
        )

    return {"summary": summary, "keywords": keywords,
            "sentiment": sentiment, "total_s": total.seconds}


RATE_LIMIT = 600  # requests per minute the simulator allows in steps 5-7
CALLS = 40


def limited(settings, **headers):
    """The request of steps 5-7. The x-sim-* headers ask the simulator for a rate limit
    (and errors); a real API has limits of its own and ignores them."""
    return dict(model=settings.chat_model,
                messages=[{"role": "user", "content": "Classify: a short question"}],
                extra_headers={"x-sim-rpm": str(RATE_LIMIT), **headers})


async def wall_of_429s(client, settings):
    """A rate limit meets a burst

    The server allows a number of requests a minute (here `RATE_LIMIT`, asked of the simulator
    by a header). Calls fired all at once blow through it, and the server answers the excess
    with 429 Too Many Requests and a Retry-After header.

    Result: {rate_limited} of {calls} calls were refused with a 429.
    """
    request = limited(settings)
    outcomes = await asyncio.gather(
        *(client.chat.completions.create(**request) for _ in range(CALLS)),
        return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    advice = [e.response.headers.get("retry-after") for e in refused]
    return {"calls": CALLS, "limit_rpm": RATE_LIMIT,
            "answered": sum(not isinstance(o, Exception) for o in outcomes),
            "rate_limited": len(refused),
            "retry_after_header": advice[0] if advice else None}


class RequestsPerMinute:
    """Hands out evenly spaced start times, so calls never exceed `rpm`."""

    def __init__(self, rpm):
        self.interval = 60 / rpm
        self.next_start = 0.0

    async def wait(self):
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval  # reserve before sleeping
        await asyncio.sleep(start - now)


@shows(RequestsPerMinute)
async def spaced_by_a_limiter(client, settings):
    """A limiter spaces the calls

    A requests-per-minute limiter gives each call a start time `60 / rpm` seconds after the
    previous one. No call meets the wall, and the batch runs at the limit.

    Result: {answered} of {calls} answered and {rate_limited} refused, at {answered_per_minute}
    answered calls a minute (the limit: {limit_rpm}).
    """
    await asyncio.sleep(2)  # the server's bucket refills after step 5
    limiter = RequestsPerMinute(RATE_LIMIT)

    async def spaced_call():
        await limiter.wait()
        return await client.chat.completions.create(**limited(settings))

    with timer() as took:
        outcomes = await asyncio.gather(
            *(spaced_call() for _ in range(CALLS)), return_exceptions=True)

    answered = sum(not isinstance(o, Exception) for o in outcomes)
    refused = sum(isinstance(o, openai.RateLimitError) for o in outcomes)
    return {"calls": CALLS, "answered": answered, "rate_limited": refused,
            "answered_per_minute": answered / took.seconds * 60,
            "limit_rpm": RATE_LIMIT}


async def call_with_retry(client, limiter, seen, attempts=6, **request):
    """Wait for a turn; retry what may work next time, as long as the server asks."""
    for attempt in range(attempts):
        await limiter.wait()
        try:
            return await client.chat.completions.create(**request)
        except openai.APIStatusError as error:
            seen[error.status_code] += 1
            last = attempt == attempts - 1
            if last or not retry.is_transient(error):
                raise
            await asyncio.sleep(retry.delay_before_retry(
                error, attempt, base=0.25, cap=8))


@shows(call_with_retry)
async def retries_lose_nothing(client, settings):
    """Retries: honour Retry-After, back off on a 5xx

    Now the server fails 30% of the calls with a 500, and the limiter runs a little too fast
    (as when another client shares the key). A 429 says how long to wait: `Retry-After`, or,
    when that is missing, when the limit resets. A 500 says nothing, so the call backs off
    exponentially with jitter. `course/llm/retry.py` reads those headers.

    Result: {lost} of {calls} calls lost, after {server_errors} answers of 500 and
    {rate_limited} of 429 along the way.
    """
    await asyncio.sleep(2)  # the server's bucket refills after step 6
    limiter, seen = RequestsPerMinute(1.2 * RATE_LIMIT), Counter()
    faults = {"x-sim-error-rate": "0.3", "x-sim-omit-retry-after": "0.5"}
    request = limited(settings, **faults)
    calls = [call_with_retry(client, limiter, seen, **request)
             for _ in range(CALLS)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    lost = sum(isinstance(o, Exception) for o in outcomes)
    return {"calls": CALLS, "lost": lost,
            "server_errors": seen[500], "rate_limited": seen[429]}


async def errors_with_return_exceptions(client, settings):
    """One failing call must not sink the batch

    With `return_exceptions=True` each call gets a slot: an answer or its error. Here the
    simulator fails two calls on purpose (a header) and one call names a model that does not
    exist.

    Result: {answered} answers kept; {failed} errors, each with its own type to handle.
    """
    async def call(i):
        fault = {"x-sim-fault": "error"} if i in (1, 4) else {}
        model = "no-such-model" if i == 3 else settings.chat_model
        return await ask(client, model, f"Summarise: {REVIEWS[i]}",
                         extra_headers=fault)

    outcomes = await asyncio.gather(*(call(i) for i in range(6)),
                                    return_exceptions=True)
    failed = sum(isinstance(o, Exception) for o in outcomes)
    kinds = [type(o).__name__ if isinstance(o, Exception) else "answer"
             for o in outcomes]
    return {"outcomes": [{"call": i, "outcome": kind}
                         for i, kind in enumerate(kinds)],
            "answered": len(outcomes) - failed, "failed": failed}


async def timeout_with_fallback(client, settings):
    """A timeout, then the fast model

    The large model hangs (the simulator is told to). After a deadline we stop waiting and
    ask the small model instead: the user gets an answer either way.

    Result: {answered_by} answered, soon after the deadline.
    """
    prompt, deadline = f"Summarise: {ARTICLE}", 2.0
    hang = {"x-sim-fault": "hang"}  # the simulator never answers this one
    large, small = settings.large_model, settings.chat_model
    with timer() as waited:
        try:
            slow = ask(client, large, prompt, extra_headers=hang)
            answer = await asyncio.wait_for(slow, deadline)
            answered_by = large
        except TimeoutError:
            answer = await ask(client, small, prompt)
            answered_by = small

    return {"answered_by": answered_by, "waited_s": waited.seconds,
            "deadline_s": deadline, "answer": answer}


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}}}}}
CITIES = ["Paris", "Lagos", "Lima", "Oslo", "Pune", "Kyoto", "Quito", "Perth"]


def get_weather(city):
    """The tool itself: a stand-in that answers at once."""
    return {"city": city, "celsius": 10 + len(city) * 2}


async def tool_calls_many_at_once(client, settings):
    """Tool calls, many at once

    Given `tools`, a model asks for a function instead of guessing: a name and JSON arguments.
    We run the function (`get_weather`, a stand-in) and send its result back as a `tool`
    message; the second call answers with it. Each question is two calls in a row; the
    questions run side by side.

    Result: {tool_calls} tool calls for {questions} questions, and {used_the_result} answers
    that use the tool's result, in {took_s} for all of them.
    """
    model, tools = settings.chat_model, [WEATHER_TOOL]

    async def answer(city):
        question = f"What is the weather in {city}?"
        messages = [{"role": "user", "content": question}]
        first = await client.chat.completions.create(
            model=model, messages=messages, tools=tools)
        asked = first.choices[0].message
        if not asked.tool_calls:  # the model answered without the tool
            return asked.content, None
        call = asked.tool_calls[0]
        weather = get_weather(**json.loads(call.function.arguments))
        messages += [asked, {"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(weather)}]
        final = await client.chat.completions.create(
            model=model, messages=messages, tools=tools)
        return final.choices[0].message.content, weather

    with timer() as took:
        replies = await asyncio.gather(*(answer(city) for city in CITIES))
    used = [w for text, w in replies if w and str(w["celsius"]) in text]
    return {"questions": len(CITIES), "took_s": took.seconds,
            "tool_calls": sum(w is not None for _, w in replies),
            "used_the_result": len(used), "first_answer": replies[0][0]}


class Review(BaseModel):
    """The fields we want out of each review."""
    sentiment: Literal["positive", "negative", "neutral"]
    product: str
    stars: int = Field(ge=1, le=5)


async def structured_output_checked(client, settings):
    """Structured output: ask for a schema, check what comes back

    "Answer in JSON" (`json_object`) gets valid JSON, not necessarily the fields you need. A
    JSON schema (`parse(response_format=Review)`) has the model fill exactly your fields.
    Either way Pydantic checks the answer, so a bad one is caught here, not three functions
    later.

    Result: with json_object {fit_with_json_object} of {reviews} answers fit the model; with
    the schema, {fit_with_the_schema}.
    """
    model = settings.chat_model

    async def as_json(review):
        response = await client.chat.completions.create(
            model=model, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": f"As JSON: {review}"}])
        try:
            content = response.choices[0].message.content
            return Review.model_validate_json(content)
        except ValidationError:
            return None  # valid JSON, wrong shape: caught here

    async def with_schema(review):
        response = await client.chat.completions.parse(
            model=model, response_format=Review,
            messages=[{"role": "user", "content": f"Extract: {review}"}])
        return response.choices[0].message.parsed

    loose = await asyncio.gather(*(as_json(r) for r in REVIEWS))
    strict = await asyncio.gather(*(with_schema(r) for r in REVIEWS))
    return {"reviews": len(REVIEWS),
            "fit_with_json_object": sum(r is not None for r in loose),
            "fit_with_the_schema": sum(r is not None for r in strict),
            "first": strict[0].model_dump() if strict[0] else None}


def pitfall_client_across_event_loops(settings):
    """Pitfall: one async client, two event loops

    An `AsyncOpenAI` client keeps its connections on the event loop that opened them. Each
    `asyncio.run` makes a new loop and closes it at the end, so a client shared between two
    `asyncio.run` calls fails the second time. Make the client inside the one loop that uses
    it (this lesson runs all its steps on one loop), or make one per `asyncio.run`.

    Result: the first loop closed and took the client's connections with it.
    """
    client = llm.make_client()

    async def one_question():
        return await ask(client, settings.chat_model, "Classify: hello")

    first = asyncio.run(one_question())
    try:
        second = asyncio.run(one_question())
    except RuntimeError as error:
        second = f"RuntimeError: {error}"

    return {"first_asyncio_run": first, "second_asyncio_run": second}


STEPS = [
    sequential_vs_concurrent,
    batch_embeddings,
    compare_models,
    chained_calls,
    wall_of_429s,
    spaced_by_a_limiter,
    retries_lose_nothing,
    errors_with_return_exceptions,
    timeout_with_fallback,
    tool_calls_many_at_once,
    structured_output_checked,
    pitfall_client_across_event_loops,
]

if __name__ == "__main__":
    run(STEPS)
