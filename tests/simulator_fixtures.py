"""The simulated LLM the simulator tests share: one per test module, and a sync client on it.
A module uses them with `from simulator_fixtures import client, sim`."""
from __future__ import annotations

import pytest
from openai import OpenAI

from course.llm.simulator.launcher import start


@pytest.fixture(scope="module")
def sim():
    with start(speed=50) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim):
    with OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=10) as c:
        yield c
