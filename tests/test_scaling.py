"""course/jobs/scaling.py: the processes, memory and CPU time lesson 08 and bench/io_bound.py read."""
import subprocess
import sys
import time

import pytest

from course.jobs import scaling


def test_a_process_tree_is_found_with_its_memory_and_cpu_time():
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
                               "sum(range(30_000_000)); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while not scaling.children_of(parent.pid) or scaling.cpu_seconds(parent.pid) < 0.2:
            assert time.monotonic() < deadline, "the parent did not fork its child and compute"
            time.sleep(0.05)
        (child,) = scaling.children_of(parent.pid)
        memory = scaling.memory_mib(child)
        assert 1 < memory["pss"] <= memory["rss"] < 500  # a small Python: MiB, not KiB or bytes
        assert scaling.cpu_seconds(parent.pid) > scaling.cpu_seconds(child)  # only the parent computed
    finally:
        for pid in scaling.children_of(parent.pid):
            subprocess.run(["kill", str(pid)])
        parent.kill()
        parent.wait(10)


@pytest.mark.parametrize("text, seconds", [("00:00:01\n", 1), ("1:02.50", 62.5), ("01:02:03", 3723),
                                           ("2-03:04:05", 2 * 86400 + 11045)])
def test_cpu_time_from_ps_reads_every_format_ps_writes(text, seconds):
    assert scaling.ps_time_seconds(text) == pytest.approx(seconds)
