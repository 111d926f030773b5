"""Four small tasks, each with something eager mode does not do: encode its arguments, encode its
result, route it to a queue, wait before a retry."""
from dataclasses import dataclass

from celery import shared_task


@dataclass
class Document:
    id: int
    text: str


@shared_task
def count_words(document):
    """Takes a Document: fine in the same process, not in a JSON message."""
    return len(document.text.split())


@shared_task
def make_title(text):
    """Returns a set: fine in the same process, not as a JSON result."""
    return {word.capitalize() for word in text.split()[:3]}


@shared_task
def nightly_report():
    """Routed to the `reports` queue (see conftest.py): only a worker reading it runs it."""
    return "report ready"


@shared_task(bind=True)
def fetch_with_retry(self):
    """Fails once, then retries three seconds later, as a task on a flaky API would."""
    if self.request.retries == 0:
        raise self.retry(countdown=3)
    return "fetched"


@shared_task
def count_words_in(text):
    """The fix for count_words: plain data in (a string, or an id to look up)."""
    return len(text.split())


@shared_task
def title_words(text):
    """The fix for make_title: plain data out (a list)."""
    return [word.capitalize() for word in text.split()[:3]]
