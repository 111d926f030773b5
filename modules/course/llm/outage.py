"""Outages on demand, for the resilience lesson: the course's simulated LLM answers 503 to every
call for a while, through its admin route `POST /sim/outage` (with SIM_ADMIN_KEY when one is set).

A real model cannot be told to fail. There `outage()` says so once and changes nothing: the steps
then show what really happened (usually: no fault).
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import httpx

from course.console import Stop, notice
from course.llm.client import ensure_endpoint
from course.settings import settings

_told = False  # the "no outage on a real model" notice is shown once per run


def _admin(route: str) -> str | None:
    """The URL of one of the simulator's /sim routes, or None when no simulator is configured."""
    base = ensure_endpoint()
    return None if base is None else base.rstrip("/").removesuffix("/v1") + route


def _headers() -> dict[str, str]:
    return {"x-sim-admin-key": settings.sim_admin_key} if settings.sim_admin_key else {}


async def outage(seconds: float) -> bool:
    """Every LLM call gets 503 for `seconds` from now (0 ends an outage). False on a real model."""
    global _told
    url = _admin("/sim/outage")
    if url:
        async with httpx.AsyncClient(timeout=5) as http:
            try:
                answer = await http.post(url, json={"seconds": seconds}, headers=_headers())
            except httpx.HTTPError:
                answer = None
        if answer is not None and answer.status_code == 200:
            return True
        if answer is not None and answer.status_code == 401:
            raise Stop(f"The simulator at {url.removesuffix('/sim/outage')} wants its admin key to inject an "
                       "outage: set SIM_ADMIN_KEY in .env to the key it was started with.")
    if not _told:
        _told = True
        notice("No outage injected: the LLM is not the course's simulator, so the next steps show what "
               "really happened (usually: no fault).")
    return False


async def server_errors() -> int | None:
    """How many 5xx answers the simulator has sent so far (GET /sim/stats); None on a real model."""
    url = _admin("/sim/stats")
    if not url:
        return None
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            answer = await http.get(url, headers=_headers())
        except httpx.HTTPError:
            return None
    if answer.status_code != 200:
        return None
    return sum(count for status, count in answer.json()["by_status"].items() if status.startswith("5"))


async def through_an_outage(answer: Callable[[], Awaitable], requests: int, every: float,
                            down_at: float, down_for: float) -> list[dict]:
    """Call `answer()` `requests` times, one every `every` seconds, while the LLM is down from
    `down_at` to `down_at + down_for` seconds: a steady stream of users meeting an outage.
    One row per call: when it started, how long it took, and what `answer()` returned."""
    start = time.monotonic()

    async def one(number: int) -> dict:
        await asyncio.sleep(number * every)
        began = time.monotonic()
        outcome = await answer()
        return {"at_s": began - start, "took_s": time.monotonic() - began, "outcome": outcome}

    async def go_down() -> None:
        await asyncio.sleep(down_at)
        await outage(down_for)

    rows, _ = await asyncio.gather(asyncio.gather(*(one(n) for n in range(requests))), go_down())
    return rows
