"""Task events are off by default (they cost most of the gap to Celery's own speed), and Flower
turns them on in the workers it watches (its --enable-events default)."""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from conftest import ROOT, free_port
from course.jobs import tasks
from course.jobs.celery_app import app


def task_events_while(action, seconds: float = 3.0) -> list[str]:
    """The task-* event types the workers send while `action()` runs (and a moment after)."""
    seen: list[str] = []
    receivers = []

    def listen():
        with app.connection_for_write() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": lambda event: seen.append(event["type"])})
            receivers.append(receiver)
            try:
                receiver.capture(limit=None, timeout=seconds + 5, wakeup=False)
            except (socket.timeout, TimeoutError):
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)  # the receiver's queue is bound
    action()
    time.sleep(seconds)
    receivers[0].should_stop = True
    listener.join(10)
    return [kind for kind in seen if kind.startswith("task-")]


def test_workers_send_no_task_events_until_flower_watches_them(worker):
    assert task_events_while(lambda: tasks.add.delay(1, 2).get(timeout=10)) == []

    port = free_port()
    flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "course", "flower", f"--port={port}",
                               "--address=127.0.0.1"], cwd=ROOT, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        seen: list[str] = []
        while "task-succeeded" not in seen and time.monotonic() < deadline:
            seen = task_events_while(lambda: tasks.add.delay(2, 3).get(timeout=10), seconds=2)
        # Flower reads the queues through the broker URL: it must still say redis://.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/broker", timeout=10) as page:
            broker_page = page.read().decode()
    finally:
        flower.terminate()
        flower.wait(10)
    assert "task-succeeded" in seen
    assert "redis://" in broker_page and "default" in broker_page
