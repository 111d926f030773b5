"""How many chat completions per second can the simulator answer?

    python bench/simulator_capacity.py [--seconds 10] [--connections 50] [--threads 2]

Starts the simulator with no latency in its own process and loads it with `wrk`
(a C load generator, so the client is never the bottleneck). The simulator must
never be what slows a lesson down; the target is at least 3000 requests/s.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from course.llm.simulator.launcher import start

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}

# wrk sends this request on every connection: a small POST like the SDK's.
LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer anything"
"""


def parse(output: str) -> dict:
    """The figures we report, taken from wrk's text output."""
    figures = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    figures["requests"] = int(total.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    figures["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors:(.*)", output)
    figures["socket_errors"] = errors.group(1).strip() if errors else "none"
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    figures["latency_avg"] = latency.group(1) if latency else "?"
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("install wrk: sudo apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp, start(latency=0, speed=1e9) as sim:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA % json.dumps(BODY))
        command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
                   "-s", str(script), f"{sim.base_url}/chat/completions"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    print(output)
    figures = parse(output)
    print(f"requests={figures['requests']} non_2xx={figures['non_2xx']} "
          f"socket_errors={figures['socket_errors']} latency_avg={figures['latency_avg']}")
    print(f"requests_per_s={figures['requests_per_s']:.0f}")


if __name__ == "__main__":
    main()
