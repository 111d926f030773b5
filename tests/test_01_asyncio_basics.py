"""Lesson 01 runs as the README says, and what it measured shows each idea at work."""
from conftest import run_lesson


def test_lesson_01_measures_each_idea(tmp_path):
    process, figures = run_lesson("01_asyncio_basics", tmp_path)
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stdout + process.stderr

    gather = figures["sequential_vs_gather"]
    assert gather["speedup"] > 4  # five 0.5 s calls: ideal 5x
    assert figures["create_task_starts_now"]["total_s"] < 0.8  # two 0.5 s calls overlapped
    assert figures["as_completed_order"]["order"] == ["fast", "medium", "slow"]
    timeout = figures["wait_for_timeout"]
    assert timeout["answer"] == "fallback done" and timeout["waited_s"] < 1.0
    semaphore = figures["semaphore_limits_concurrency"]
    assert semaphore["peak_in_flight"] == 3 and semaphore["total_s"] >= 2.0  # four waves
    assert figures["task_group_cancels_on_failure"]["cancelled"] == 3
    blocking = figures["pitfall_blocking_call"]
    assert blocking["blocking_s"] >= 1.5 and blocking["to_thread_s"] < 0.8
    forgotten = figures["pitfall_forgotten_await"]
    assert forgotten["got_instead_of_a_result"] == "coroutine"
    assert "was never awaited" in forgotten["warning"]
    assert figures["pitfall_gather_exceptions"] == {
        "default_gather": "raised ValueError('call 2 got a bad answer'); the three good results are gone",
        "succeeded": 3, "failed": 1}
