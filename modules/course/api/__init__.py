"""The job API (FastAPI) in front of the Celery workers, and the page it serves.

    app.py           the routes; create_app()          __main__.py   python -m course.api (make api)
    auth.py          bearer tokens, stream tokens       store.py      job records in Redis
    events.py        the server-sent event stream       schemas.py    what a caller may send, limits
    problems.py      errors as problem+json             guards.py     body limit, safe headers
    audit.py         the BackgroundTasks side job       worker_watch  whether a worker answers
    server.py        start and stop it for a lesson, a test or a benchmark
    client.py        the client side: read an event stream, show a request and its answer
    static/          the page: HTML, JavaScript, CSS, no build step

The work itself runs in the Celery task course.jobs.text_jobs.run_text_job.
"""
