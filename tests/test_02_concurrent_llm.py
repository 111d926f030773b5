"""Lesson 02 runs as the README says against its own simulator, and its figures hold."""
import pytest

from conftest import run_lesson


@pytest.fixture(scope="module")
def lesson_02(tmp_path_factory):
    # Speed 5 keeps latencies (about 0.1 s a call) well above the client's own overhead.
    return run_lesson("02_concurrent_llm", tmp_path_factory.mktemp("l02"), SIM_SPEED="5")


def test_lesson_02_runs_to_the_end(lesson_02):
    process, figures = lesson_02
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr
    assert "Traceback" not in process.stdout + process.stderr
    assert "simulated LLM" in process.stdout
    assert len(figures) == 8


def test_ten_concurrent_calls_are_at_least_five_times_faster(lesson_02):
    step = lesson_02[1]["sequential_vs_concurrent"]
    assert step["calls"] == 10
    assert step["speedup"] >= 5


def test_one_batched_embedding_request_beats_one_per_text(lesson_02):
    step = lesson_02[1]["batch_embeddings"]
    assert step["vectors"] == 20 and step["dimensions"] == 1536
    assert step["speedup"] >= 5


def test_two_models_in_parallel_take_the_time_of_the_slower(lesson_02):
    step = lesson_02[1]["compare_models"]
    slower = max(step["gpt-4o-mini_s"], step["gpt-4o_s"])
    assert step["gpt-4o_s"] > step["gpt-4o-mini_s"]
    assert step["both_s"] < slower * 1.3


def test_chain_gives_keywords_from_the_summary(lesson_02):
    step = lesson_02[1]["chained_calls"]
    assert step["sentiment"] in ("positive", "negative", "neutral")
    assert step["keywords"] and step["summary"]


def test_limiter_meets_no_wall_of_429s_and_loses_nothing(lesson_02):
    step = lesson_02[1]["rate_limited_calls"]
    assert step["naive_429s"] >= 20  # forty at once against ten a second
    assert step["lost"] == 0
    assert step["limited_429s"] <= 3
    assert step["limit_utilisation"] > 0.8


def test_return_exceptions_keeps_good_answers(lesson_02):
    assert lesson_02[1]["errors_with_return_exceptions"] == {"calls": 6, "answered": 3, "failed": 3}


def test_hanging_model_falls_back_to_the_fast_one(lesson_02):
    step = lesson_02[1]["timeout_with_fallback"]
    assert step["answered_by"] == "gpt-4o-mini"
    assert 2 <= step["waited_s"] < 4


def test_client_shared_across_two_event_loops_fails(lesson_02):
    step = lesson_02[1]["pitfall_client_across_event_loops"]
    assert step["second_asyncio_run"] == "RuntimeError: Event loop is closed"
