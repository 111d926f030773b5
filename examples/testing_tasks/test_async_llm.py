"""Async LLM code tested with pytest-asyncio, against the course's simulated LLM over real HTTP."""
import time

import pytest

from llm_code import summarise_all

TEXTS = [f"Report {n}: the queue grew while the workers were busy." for n in range(10)]


@pytest.mark.asyncio
async def test_every_text_gets_a_summary_in_order(llm):
    summaries = await summarise_all(llm, TEXTS)
    assert len(summaries) == len(TEXTS) and all(summaries)


@pytest.mark.asyncio
async def test_five_at_a_time_take_about_two_latencies(llm):
    start = time.monotonic()
    await summarise_all(llm, TEXTS, at_once=5)
    assert time.monotonic() - start < 5 * 0.2  # ten calls of 0.2 s, five at a time: about 0.4 s
