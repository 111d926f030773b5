"""The same four tests, run eagerly and against a real worker. Eagerly all four pass; on a
real worker each one meets what eager mode skipped."""
from tasks import Document, count_words, fetch_with_retry, make_title, nightly_report


def test_arguments_travel_as_json(mode):
    assert count_words.delay(Document(1, "three short words")).get(timeout=2) == 3


def test_the_result_travels_as_json(mode):
    assert make_title.delay("queues for llm work").get(timeout=2) == {"Queues", "For", "Llm"}


def test_a_routed_task_needs_a_worker_on_its_queue(mode):
    assert nightly_report.delay().get(timeout=2) == "report ready"


def test_a_retry_waits_its_countdown(mode):
    assert fetch_with_retry.delay().get(timeout=2) == "fetched"
