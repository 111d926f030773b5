"""How close lesson 02's limiter and retry code get to a server's rate limit, losing nothing.

Usage:  python bench/rate_limited.py --calls 300 --rpm 600

The simulator (its own process) limits the chat model to --rpm requests a minute and answers
429 + Retry-After past it. Lesson 02's RequestsPerMinute limiter and call_with_retry drive the
calls. Prints the sustained rate (`sustained_rpm` below, the same definition as lesson 02's
answered calls a minute), the 429s met and the calls lost; the last line is
`limit_utilisation=<sustained/limit> lost=<n>`.
"""
import argparse
import asyncio
import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "modules"))

from openai import AsyncOpenAI  # noqa: E402

from course.llm.simulator import launcher  # noqa: E402


def sustained_rpm(answered: int, seconds: float) -> float:
    """Calls answered per minute of wall time.

    `answered` counts the calls that got an answer (a lost call counts nothing); `seconds` runs
    from the start of the batch to the end of its last call, waits and retries included.
    """
    return answered / seconds * 60


def load_lesson_02():
    spec = importlib.util.spec_from_file_location("lesson_02", ROOT / "modules" / "02_concurrent_llm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def drive(base_url: str, calls: int, rpm: float, concurrency: int) -> dict:
    lesson = load_lesson_02()
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    limiter, in_flight, seen = lesson.RequestsPerMinute(rpm), asyncio.Semaphore(concurrency), Counter()
    request = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "Classify: ping"}])

    async def one_call():
        async with in_flight:
            return await lesson.call_with_retry(client, limiter, seen, **request)  # seen: status -> count

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one_call() for _ in range(calls)), return_exceptions=True)
    seconds = time.perf_counter() - start
    await client.close()
    lost = sum(isinstance(o, Exception) for o in outcomes)
    return {"seconds": seconds, "429s": seen[429], "lost": lost,
            "sustained_rpm": sustained_rpm(calls - lost, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=20)
    options = parser.parse_args()

    with launcher.start(speed=1, extra_args=["--rpm", options.rpm]) as sim:
        result = asyncio.run(drive(sim.base_url, options.calls, options.rpm, options.concurrency))

    utilisation = result["sustained_rpm"] / options.rpm
    print(f"calls={options.calls} limit_rpm={options.rpm:g} concurrency={options.concurrency}")
    print(f"time_s={result['seconds']:.2f} sustained_rpm={result['sustained_rpm']:.1f} "
          f"429s={result['429s']}")
    print(f"limit_utilisation={utilisation:.3f} lost={result['lost']}")


if __name__ == "__main__":
    main()
