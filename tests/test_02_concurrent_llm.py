"""Lesson 02 runs as the README says against its own simulator, and its figures hold."""
import pytest

NAME = "02_concurrent_llm"


@pytest.fixture(scope="module")
def steps(lesson_figures):
    return lesson_figures(NAME, "simulated LLM")


def test_ten_concurrent_calls_come_close_to_the_slowest_one(steps):
    step = steps["sequential_vs_concurrent"]
    assert step["calls"] == 10
    assert step["speedup_x"] >= 5
    assert step["gather_s"] < 2 * step["ideal_gather_s"]


def test_one_batched_embedding_request_beats_one_per_text(steps):
    step = steps["batch_embeddings"]
    assert step["vectors"] == step["texts"] == 20 and step["dimensions"] == 1536
    assert step["speedup_x"] >= 5


def test_two_models_in_parallel_take_the_time_of_the_slower(steps):
    step = steps["compare_models"]
    seconds = {row["model"]: row["seconds_s"] for row in step["answers"]}
    assert seconds["gpt-4o"] > seconds["gpt-4o-mini"]
    assert step["both_s"] < 1.3 * max(seconds.values())


def test_the_keywords_come_from_the_summary(steps):
    step = steps["chained_calls"]
    assert step["sentiment"] in ("positive", "negative", "neutral")
    keywords = [word.strip() for word in step["keywords"].split(",")]
    assert keywords and all(word.lower() in step["summary"].lower() for word in keywords)


def test_a_burst_meets_a_wall_of_429s_with_retry_after(steps):
    step = steps["wall_of_429s"]
    assert step["rate_limited"] >= step["calls"] // 2
    assert step["answered"] + step["rate_limited"] == step["calls"]
    assert float(step["retry_after_header"]) > 0


def test_the_limiter_runs_at_the_limit_and_meets_no_429(steps):
    step = steps["spaced_by_a_limiter"]
    assert step["answered"] == step["calls"] and step["rate_limited"] == 0
    assert 0.8 * step["limit_rpm"] <= step["answered_per_minute"] <= 1.1 * step["limit_rpm"]


def test_retries_lose_no_call_to_500s(steps):
    step = steps["retries_lose_nothing"]
    assert step["lost"] == 0
    assert step["server_errors"] >= 3  # 30% of 40 calls failed at least once: retries really ran
    assert step["rate_limited"] >= 1  # the limiter ran above the limit: 429s were retried too


def test_return_exceptions_keeps_each_error_in_its_slot(steps):
    step = steps["errors_with_return_exceptions"]
    assert [row["outcome"] for row in step["outcomes"]] == [
        "answer", "InternalServerError", "answer", "NotFoundError", "InternalServerError", "answer"]
    assert (step["answered"], step["failed"]) == (3, 3)


def test_a_hanging_model_falls_back_to_the_fast_one_after_the_deadline(steps):
    step = steps["timeout_with_fallback"]
    assert step["answered_by"] == "gpt-4o-mini"
    assert step["deadline_s"] <= step["waited_s"] < step["deadline_s"] + 2


def test_every_question_gets_a_tool_call_and_an_answer_that_uses_its_result(steps):
    step = steps["tool_calls_many_at_once"]
    assert step["tool_calls"] == step["used_the_result"] == step["questions"] == 8
    assert "Paris" in step["first_answer"]  # the tool was called with the city the question named


def test_a_schema_gets_the_fields_a_bare_json_request_misses(steps):
    step = steps["structured_output_checked"]
    assert step["fit_with_json_object"] < step["fit_with_the_schema"] == step["reviews"]
    assert step["first"]["sentiment"] == "positive" and step["first"]["stars"] == 5  # the rating follows the tone


def test_a_client_shared_across_two_event_loops_fails(steps):
    step = steps["pitfall_client_across_event_loops"]
    assert step["second_asyncio_run"] == "RuntimeError: Event loop is closed"
