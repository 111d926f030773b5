"""LLM tasks lose nothing to transient errors: a simulator with a 30% error rate and a rate limit."""
import json
import urllib.request
import uuid

import pytest

from course.jobs import tasks, workers
from course.jobs.celery_app import app
from course.llm.simulator import launcher

ERROR_RATE = 0.3
RPM = 1200  # 20 requests a second per model, far below what four pool processes ask for


@pytest.fixture(scope="module")
def faulty_llm_worker(private_redis):
    app.control.purge()
    with launcher.start(speed=20, extra_args=["--error-rate", str(ERROR_RATE), "--rpm", str(RPM)]) as sim:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OPENAI_BASE_URL", sim.base_url)
            env.setenv("CELERY_VISIBILITY_TIMEOUT", "60")  # each wait at most 12 s, 48 s of waiting in all
            worker = workers.start_worker(extra=("--concurrency", "4"))
        try:
            yield sim
        finally:
            worker.stop()


def test_no_llm_task_is_lost_at_a_30_percent_error_rate_under_a_rate_limit(faulty_llm_worker):
    chats = [tasks.chat_completion.delay(f"Question {n}: say hello in five words.") for n in range(120)]
    flaky = [tasks.flaky_llm_call.delay(f"retries-{uuid.uuid4()}", 2) for _ in range(30)]
    for result in chats + flaky:
        result.get(timeout=180, propagate=False)
    with urllib.request.urlopen(f"{faulty_llm_worker.url}/sim/stats", timeout=5) as response:
        by_status = json.load(response)["by_status"]

    lost = [result for result in chats + flaky if result.state != "SUCCESS"]
    retries = sum(result.retries for result in chats + flaky)
    print(f"\n{len(chats) + len(flaky)} LLM tasks, {len(lost)} lost; {retries} retries (at most "
          f"{max(result.retries for result in chats + flaky)} for one task) after "
          f"{by_status.get('500', 0)} answers 500 and {by_status.get('429', 0)} answers 429")
    assert lost == [], [(result.retries, repr(result.result)[:120]) for result in lost]
    assert by_status.get("500", 0) > 20 and by_status.get("429", 0) > 0  # the faults did happen
    assert all(result.get()["attempts"] >= 3 for result in flaky)
