"""The shared package of the course: settings, the LLM client, the step runner, Redis and Celery."""


def __getattr__(name: str):
    # `celery -A course` looks for `course.app`; imported on demand so lessons without Celery stay light.
    if name == "app":
        from course.jobs.celery_app import app

        return app
    raise AttributeError(f"module 'course' has no attribute {name!r}")
