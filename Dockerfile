# One image for every Python service of the stack: simulator, worker, beat, flower.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# The same requirements file as `make setup`; `-e .` in it needs the package source present.
COPY requirements.txt pyproject.toml ./
COPY modules ./modules
RUN pip install -r requirements.txt

# Celery refuses to run as root without a warning; the services run as an ordinary user, who
# owns the course's data folder (beat's schedule, the webhook secret) and nothing else in /app.
RUN useradd --create-home course && mkdir .course-data && chown course .course-data
USER course
