"""Lesson 02: concurrent LLM calls

Run:  python modules/02_concurrent_llm.py      (--no-pause runs straight through, --list shows the steps)
You learn: why ten LLM calls can take about the time of one, how to batch, compare models, chain
dependent calls, stay under a rate limit without losing a call, and fall back when a model is slow.

Every call goes through the real `openai` SDK (`AsyncOpenAI`). With no key set it talks to the
course's simulated LLM; set OPENAI_API_KEY (or OPENAI_BASE_URL) in .env and the same code runs
against a real model.
"""
import asyncio
import math
import time

import openai

from course import llm
from course import runner as lesson
from course.runner import Result, timer, timings
from course.samples import ARTICLE, REVIEWS


async def ask(client, model, prompt, **options):
    """One chat completion; returns the answer text."""
    response = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **options)
    return response.choices[0].message.content


async def sequential_vs_concurrent(client, settings):
    """Ten calls one after another, then all at once

    The model spends most of a call generating tokens far away; our process just waits.
    `gather` sends all ten requests at once, so the batch takes about as long as its slowest call.
    """
    prompts = [f"What is the sentiment of this review? {review}" for review in REVIEWS]
    await ask(client, settings.chat_model, "ping")  # warm-up: opens the connection for both runs

    latencies = []
    with timer() as one_by_one:
        for prompt in prompts:
            with timer() as call:
                await ask(client, settings.chat_model, prompt)
            latencies.append(call.seconds)

    with timer() as together:
        answers = await asyncio.gather(*(ask(client, settings.chat_model, p) for p in prompts))

    speedup = one_by_one.seconds / together.seconds
    ideal = max(latencies)  # the slowest single call
    return Result(
        figures={"calls": len(prompts), "sequential_s": one_by_one.seconds, "concurrent_s": together.seconds,
                 "speedup": speedup, "ideal_speedup": one_by_one.seconds / ideal},
        view=timings({"one after another": one_by_one.seconds, "asyncio.gather": together.seconds},
                     ideal={"asyncio.gather": ideal}),
        note=f"{speedup:.1f}x faster (ideal {one_by_one.seconds / ideal:.1f}x: the slowest call alone). "
             f"First answer: {answers[0]!r}",
    )


async def batch_embeddings(client, settings):
    """Batch embeddings: one request with many inputs

    The embeddings endpoint takes a list. Twenty texts in one request pay the network
    overhead once instead of twenty times.
    """
    texts = REVIEWS * 2

    with timer() as one_per_text:
        for text in texts:
            await client.embeddings.create(model=settings.embedding_model, input=text)

    with timer() as batched:
        response = await client.embeddings.create(model=settings.embedding_model, input=texts)

    speedup = one_per_text.seconds / batched.seconds
    return Result(
        figures={"texts": len(texts), "one_request_per_text_s": one_per_text.seconds,
                 "one_batched_request_s": batched.seconds, "speedup": speedup,
                 "vectors": len(response.data), "dimensions": len(response.data[0].embedding)},
        view=timings({f"{len(texts)} requests": one_per_text.seconds, "1 request, 20 inputs": batched.seconds}),
        note=f"Batching was {speedup:.1f}x faster and returned {len(response.data)} vectors "
             f"of {len(response.data[0].embedding)} dimensions.",
    )


async def compare_models(client, settings):
    """The same prompt to two models, in parallel

    Asking a fast small model and a slow large one at once costs the time of the slower,
    and shows the trade-off side by side.
    """
    prompt = f"Summarise this article in two sentences: {ARTICLE}"

    async def timed_answer(model):
        with timer() as call:
            response = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}])
        return {"model": model, "seconds": call.seconds,
                "output_tokens": response.usage.completion_tokens,
                "answer": response.choices[0].message.content}

    with timer() as both:
        rows = await asyncio.gather(timed_answer(settings.chat_model), timed_answer(settings.large_model))

    return Result(
        figures={"both_s": both.seconds, **{f"{row['model']}_s": row["seconds"] for row in rows}},
        view=lesson.rows_table(rows),
        note=f"Both answers in {both.seconds:.2f} s, not {sum(r['seconds'] for r in rows):.2f} s.",
    )


async def chained_calls(client, settings):
    """Dependent calls in order, independent ones alongside

    Keywords are taken from the summary, so that pair must run in order. The sentiment does
    not depend on either, so it runs at the same time as the whole chain.
    """
    async def summary_then_keywords():
        summary = await ask(client, settings.chat_model, f"Summarise: {ARTICLE}")
        keywords = await ask(client, settings.chat_model, f"List the keywords of: {summary}")
        return summary, keywords

    with timer() as total:
        (summary, keywords), sentiment = await asyncio.gather(
            summary_then_keywords(),
            ask(client, settings.chat_model, f"What is the sentiment of: {ARTICLE}"),
        )

    return Result(
        figures={"total_s": total.seconds, "summary": summary, "keywords": keywords, "sentiment": sentiment},
        view=lesson.figures_table({"summary": summary, "keywords": keywords, "sentiment": sentiment}),
        note=f"Three calls, two of them chained, in {total.seconds:.2f} s: the time of the chain.",
    )


class RequestsPerMinute:
    """Hands out evenly spaced start times, so calls never exceed `rpm`."""

    def __init__(self, rpm: float):
        self.interval = 60 / rpm
        self.next_start = 0.0

    async def wait(self):
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval  # reserve the slot before sleeping
        await asyncio.sleep(start - now)


async def call_with_retry(client, limiter, stats, max_attempts=6, **request):
    """A chat completion that waits its turn and, on a 429, waits as long as the server asks."""
    for attempt in range(1, max_attempts + 1):
        await limiter.wait()
        try:
            return await client.chat.completions.create(**request)
        except openai.RateLimitError as error:
            stats["429s"] += 1
            if attempt == max_attempts:
                raise
            await asyncio.sleep(retry_after_seconds(error))


def retry_after_seconds(error: openai.RateLimitError) -> float:
    """The server's own advice: retry-after-ms if present, else retry-after, else one second."""
    headers = error.response.headers
    if "retry-after-ms" in headers:
        return float(headers["retry-after-ms"]) / 1000
    return float(headers.get("retry-after", 1))


@lesson.shows(RequestsPerMinute, call_with_retry, retry_after_seconds)
async def rate_limited_calls(client, settings):
    """Staying under a rate limit without losing a call

    The server allows 600 requests a minute for this demo (a header asks the simulator for
    that limit; a real API has its own). Forty calls fired at once meet a wall of 429s. Spaced
    by a requests-per-minute limiter, with retries that honour Retry-After, every call lands.
    """
    rpm, calls = 600, 40
    limit = {"x-sim-rpm": str(rpm)}
    request = dict(model=settings.chat_model, extra_headers=limit,
                   messages=[{"role": "user", "content": "Classify: a short question"}])

    naive = await asyncio.gather(*(client.chat.completions.create(**request) for _ in range(calls)),
                                 return_exceptions=True)
    naive_429s = sum(isinstance(r, openai.RateLimitError) for r in naive)
    await asyncio.sleep(2)  # let the server's bucket refill before the polite run

    limiter, in_flight, stats = RequestsPerMinute(rpm), asyncio.Semaphore(10), {"429s": 0}

    async def polite_call():
        async with in_flight:  # at most 10 open requests, whatever the rate
            return await call_with_retry(client, limiter, stats, **request)

    with timer() as polite:
        answers = await asyncio.gather(*(polite_call() for _ in range(calls)), return_exceptions=True)

    lost = sum(isinstance(a, Exception) for a in answers)
    sustained = calls / polite.seconds * 60
    return Result(
        figures={"calls": calls, "limit_rpm": rpm, "naive_429s": naive_429s, "limited_429s": stats["429s"],
                 "lost": lost, "sustained_rpm": sustained, "limit_utilisation": sustained / rpm},
        view=lesson.rows_table([
            {"approach": "all at once", "429 responses": naive_429s, "calls lost": naive_429s},
            {"approach": "limiter + retry", "429 responses": stats["429s"], "calls lost": lost},
        ]),
        note=f"{calls - lost}/{calls} calls answered at {sustained:.0f} requests/min "
             f"({sustained / rpm:.0%} of the limit).",
    )


async def errors_with_return_exceptions(client, settings):
    """One failing call must not sink the batch

    With `return_exceptions=True` each call gets a slot: an answer or its error. Here the
    simulator fails two calls on purpose (a header) and one call names a model that does not exist.
    """
    async def call(i):
        fault = {"x-sim-fault": "error"} if i in (1, 4) else {}
        model = "no-such-model" if i == 3 else settings.chat_model
        return await ask(client, model, f"Summarise review {i}: {REVIEWS[i]}", extra_headers=fault)

    outcomes = await asyncio.gather(*(call(i) for i in range(6)), return_exceptions=True)
    rows = [{"call": i, "outcome": type(o).__name__ if isinstance(o, Exception) else "answer",
             "detail": str(o)[:60]} for i, o in enumerate(outcomes)]
    failed = sum(isinstance(o, Exception) for o in outcomes)
    return Result(
        figures={"calls": len(outcomes), "answered": len(outcomes) - failed, "failed": failed},
        view=lesson.rows_table(rows),
        note=f"{len(outcomes) - failed} answers kept; {failed} errors, each with its own type to handle.",
    )


async def timeout_with_fallback(client, settings):
    """A timeout, then the fast model

    The large model hangs (the simulator is told to). After two seconds we stop waiting and
    ask the small model instead: the user gets an answer either way.
    """
    prompt = f"Summarise: {ARTICLE}"
    with timer() as waited:
        try:
            answer = await asyncio.wait_for(
                ask(client, settings.large_model, prompt, extra_headers={"x-sim-fault": "hang"}), timeout=2)
            answered_by = settings.large_model
        except TimeoutError:
            answer = await ask(client, settings.chat_model, prompt)
            answered_by = settings.chat_model

    return Result(
        figures={"answered_by": answered_by, "waited_s": waited.seconds, "timeout_s": 2},
        note=f"{answered_by} answered after {waited.seconds:.2f} s: {answer!r}",
    )


def pitfall_client_across_event_loops(settings):
    """Pitfall: one async client, two event loops

    An `AsyncOpenAI` client keeps its connections on the event loop that opened them. Each
    `asyncio.run` makes a new loop and closes it at the end, so a client shared between two
    `asyncio.run` calls fails the second time. Make the client inside the one loop that uses it
    (this lesson runs all its steps on one loop), or make one per `asyncio.run`.
    """
    client = llm.make_client()

    async def one_question():
        return await ask(client, settings.chat_model, "Classify: hello")

    first = asyncio.run(one_question())
    try:
        second = asyncio.run(one_question())
    except RuntimeError as error:
        second = f"RuntimeError: {error}"

    return Result(figures={"first_asyncio_run": first, "second_asyncio_run": second},
                  note="The first loop closed and took the client's connections with it.")


STEPS = [
    sequential_vs_concurrent,
    batch_embeddings,
    compare_models,
    chained_calls,
    rate_limited_calls,
    errors_with_return_exceptions,
    timeout_with_fallback,
    pitfall_client_across_event_loops,
]

if __name__ == "__main__":
    lesson.run(STEPS)
