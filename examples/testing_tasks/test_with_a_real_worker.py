"""The same four ideas, written so a real worker passes them: the tests worth keeping."""
from tasks import count_words_in, fetch_with_retry, title_words


def test_plain_data_in_and_out_survives_the_trip(celery_session_worker):
    assert count_words_in.delay("three short words").get(timeout=5) == 3
    assert title_words.delay("queues for llm work").get(timeout=5) == ["Queues", "For", "Llm"]


def test_reports_are_routed_to_the_reports_queue(celery_session_app):
    route = celery_session_app.amqp.router.route({}, "tasks.nightly_report")
    assert route["queue"].name == "reports"  # deploy a worker with -Q reports, or it waits for ever


def test_a_retry_finishes_after_its_countdown(celery_session_worker):
    assert fetch_with_retry.delay().get(timeout=10) == "fetched"
