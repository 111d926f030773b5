# The course's commands. `make course` and `make test` set everything up on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup course lesson test worker beat flower doctor simulator api redis dead-letters rq-worker stop-redis bench stack slides clean

setup: $(STAMP)

# The virtual environment, rebuilt when requirements change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

course: setup            ## every lesson in order (pauses between steps on a terminal)
	$(BIN)/python -m course.runner $(ARGS)

lesson: setup            ## one lesson: make lesson N=2 (STEP=3 starts at its third step; no N lists them)
	@$(BIN)/python -m course.runner --lesson "$(N)" $(if $(STEP),--step $(STEP)) $(ARGS)

# What only the tests need (browser driver, client libraries), on top of the course's own.
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

test: setup $(TEST_STAMP)  ## the whole test suite, on three processes
	$(BIN)/python -m pytest -n 3 $(ARGS)

# The command is workers.WORKER_COMMAND (threads, the pool lesson 08 recommends); it prints it first.
worker: setup            ## the course's Celery worker for lessons 03-08 (run it in a second terminal)
	@$(BIN)/python -m course.jobs.redis_server start-redis   # Redis first: none answering means start one
	@$(BIN)/python -m course.jobs.workers

beat: setup              ## the periodic-task scheduler (one instance only)
	$(BIN)/celery -A course beat --loglevel=info

# 127.0.0.1 only: Flower shows every task's arguments. FLOWER_BASIC_AUTH=user:password (in .env or
# the environment) adds a login. --enable-events: Flower switches task events on in the workers.
flower: setup            ## the monitoring web UI on http://127.0.0.1:5555
	$(BIN)/celery -A course flower --address=127.0.0.1 --port=5555 --enable-events

# Lesson 09's lighter queue: RQ on the same Redis, running course/jobs/llm_job.py's summarise.
rq-worker: setup         ## an RQ worker for lesson 09's LLM job (the lighter queue)
	@$(BIN)/python -m course.jobs.redis_server start-redis
	$(BIN)/rq worker -c course.jobs.rq_tasks -S json

doctor: setup            ## check Redis, the worker and the LLM endpoint
	$(BIN)/python -m course.doctor

simulator: setup         ## the simulated LLM on a fixed port (SIM_PORT, default 8100)
	$(BIN)/python -m course.llm.simulator

# 127.0.0.1 by default (API_HOST); callers and limits from API_TOKENS and API_MAX_* (see .env.example).
api: setup               ## the job API and its page on http://127.0.0.1:8000 (API_PORT); jobs wait for make worker
	$(BIN)/python -m course.api

redis: setup             ## start the course's redis-server on REDIS_URL's port when none answers
	$(BIN)/python -m course.jobs.redis_server start-redis

dead-letters: setup      ## the tasks that failed for good (ARGS="show ID", "replay ID", "delete ID")
	$(BIN)/python -m course.jobs.dead_letters $(ARGS)

stop-redis: setup        ## stop the redis-server the course started
	$(BIN)/python -m course.jobs.redis_server stop-redis

# Every deck to slides/dist/ (HTML; PDF too with Chrome or Chromium), each lesson deck's last slide
# filled with your last run of it. Needs Node.js with npm: the Marp CLI comes from slides/package-lock.json.
slides: setup            ## the decks as HTML (and PDF) in slides/dist/
	$(BIN)/python slides/make_slides.py $(ARGS)

bench: setup             ## the benchmarks; each prints its measured figures
	$(BIN)/python bench/fanout.py --calls 200 --concurrency 20 --latency 0.5
	$(BIN)/python bench/fanout.py --calls 1000 --concurrency 100 --latency 1.0
	$(BIN)/python bench/rate_limited.py --calls 300 --rpm 600
	$(BIN)/python bench/simulator_capacity.py
	$(BIN)/python bench/celery_throughput.py
	$(BIN)/python bench/job_api.py
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/io_bound.py
	$(BIN)/python bench/io_bound.py --pool prefork --concurrency 2 --runs 1   # Celery's default pool, for contrast

stack:                   ## the shared stack in Docker (needs REDIS_PASSWORD, SIM_ADMIN_KEY, FLOWER_BASIC_AUTH in .env)
	docker compose up -d

clean:
	rm -rf $(VENV) .course-data .pytest_cache
