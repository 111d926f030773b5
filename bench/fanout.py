"""How close does a bounded fan-out get to the ideal time?

    python bench/fanout.py --calls 200 --concurrency 20 --latency 0.5

The simulator runs in its own process with a fixed latency per request, so with C
calls in flight the best possible time is ceil(N / C) * L. Whatever is left over is
client overhead (the SDK's CPU per call) plus the server's. The last line is
`efficiency=<ideal/actual>`, or `errors=<n>` when any call failed: a failed call ends early,
so a time with failures in it would flatter the efficiency: none is printed and the exit
code is 1. (--error-rate makes the simulator fail that fraction of calls, to see that case.)
"""
from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter

import httpx2
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient

from course.llm.simulator.launcher import start


async def fan_out(base_url: str, calls: int, concurrency: int, backend: str) -> tuple[float, Counter]:
    # One client for every call; the pool must allow `concurrency` connections at once.
    if backend == "aiohttp":  # the SDK's documented aiohttp transport (openai[aiohttp]): less CPU per call
        http_client = DefaultAioHttpClient(limits=httpx2.Limits(max_connections=concurrency), timeout=60)
    else:
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http_client = DefaultAsyncHttpxClient(limits=limits, timeout=60)
    client = AsyncOpenAI(base_url=base_url, api_key="anything", max_retries=0, http_client=http_client)
    semaphore = asyncio.Semaphore(concurrency)
    errors: Counter[str] = Counter()  # failed calls by kind

    async def ask(i: int) -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Question number {i}"}])

    async def one(i: int) -> None:
        async with semaphore:
            try:
                await ask(i)
            except Exception as error:
                errors[type(error).__name__] += 1

    # One call before the clock starts: the SDK's first call pays one-off costs
    # (lazy imports, building its request machinery) that are not part of fanning out.
    await ask(-1)
    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    actual = time.perf_counter() - began
    await client.close()
    return actual, errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--backend", choices=["httpx", "aiohttp"], default="aiohttp",
                   help="the SDK's HTTP transport (aiohttp needs openai[aiohttp])")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of calls the simulator fails")
    args = p.parse_args()

    with start(latency=args.latency, extra_args=["--error-rate", args.error_rate]) as sim:
        actual, errors = asyncio.run(fan_out(sim.base_url, args.calls, args.concurrency, args.backend))
    ideal = math.ceil(args.calls / args.concurrency) * args.latency
    failed = sum(errors.values())
    print(f"calls={args.calls} concurrency={args.concurrency} latency={args.latency}s backend={args.backend}")
    print(f"actual={actual:.3f}s ideal={ideal:.3f}s answered={args.calls - failed}")
    if failed:
        kinds = ",".join(f"{kind}:{count}" for kind, count in errors.most_common())
        print(f"error_kinds={kinds} (no efficiency: failed calls end early and would flatter it)")
        print(f"errors={failed}")
        raise SystemExit(1)  # no figure was measured
    else:
        print(f"efficiency={ideal / actual:.3f}")


if __name__ == "__main__":
    main()
