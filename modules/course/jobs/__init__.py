"""Background jobs: Redis, the Celery app and its tasks, workers, beat, and the webhook receiver."""
