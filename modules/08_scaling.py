"""Lesson 08: scaling LLM work

Run:  make lesson N=08      (ARGS=--no-pause runs straight through, ARGS=--list lists the steps)
You learn: why a default Celery worker makes only as many LLM calls at once as the machine has
cores, what more processes cost, how a thread pool and one task fanning out with asyncio get
close to the limit, what several workers and autoscale add, how prefetching strands tasks
behind a slow one, and which setup suits which work.

An LLM task spends almost all its time waiting on the network. Each step sends the same batch
of LLM tasks (one call each, which the simulated LLM answers in a fixed time) to workers
started for that step with a given pool, on a queue of their own, and times the batch next to
the ideal: as many waves of calls as the slots allow, each one latency long. The last step puts
every setup side by side. Redis comes from REDIS_URL, started on localhost when none answers.

Recap:
- A worker makes as many LLM calls at once as it has slots, and prefork's default is one
  process per CPU core: the calls wait in line while the CPU idles.
- Every prefork process costs tens of MiB; threads in one process cost almost nothing. For
  work that waits on the network, run --pool threads with a concurrency of tens.
- One task can keep many calls in flight with gather and a semaphore, but it is one unit: a
  failure runs it all again, and its progress is yours to report.
- Several workers on one Redis share its queues and add up their slots: that is how you use
  more machines. Autoscale grows a prefork pool with the backlog, cold processes first.
- Prefetch 1 with late acks: a task stuck on a slow call holds no other task back.
- Keep prefork for CPU-heavy tasks and for tasks that may crash their process.
"""
import math
import time

from course.jobs import tasks
from course.jobs.scaling import memory_mib, running_workers
from course.runner import run, shows, timer

LATENCY = 1.0  # seconds per LLM call, divided by SIM_SPEED (the simulator's x-sim-latency)
TASKS = 40  # the batch every setup gets: one LLM call per task
SCORECARD = {}  # each setup's line, written by its step; the last step shows them


def ask(setup, prompts, **options):
    """One ask_all task on the setup's queue."""
    return tasks.ask_all.apply_async((prompts,), options, queue=setup.queue)


def run_batch(setup, latency):
    """The batch every setup gets: TASKS tasks of one LLM call each."""
    with timer() as took:
        sent = [ask(setup, [f"Question {n}"], latency=latency)
                for n in range(TASKS)]
        runs = [result.get(timeout=120) for result in sent]
    return took.seconds, runs


def score(name, seconds, ideal_s, memory):
    """Write this setup's line of the scorecard."""
    SCORECARD[name] = {"calls_a_second": TASKS / seconds,
                       "of_the_ideal_pct": 100 * ideal_s / seconds,
                       "memory_mib": memory}
    return SCORECARD[name]


@shows(ask, run_batch)
def the_default_pool_waits_in_line(settings):
    """The default worker: one LLM call per CPU core

    `celery worker` with no options runs the prefork pool: one process per CPU core, each
    running one task at a time. An LLM task waits for its answer almost all the time, so the
    calls wait in line for a process while the CPU idles: the wall every default setup hits.

    Result: {slots} processes, so the {tasks} calls went in waves of {slots}; the worker's
    CPU was busy {cpu_busy_pct} of the time.
    """
    latency = LATENCY / settings.sim_speed
    with running_workers("prefork") as setup:  # the defaults
        slots, cpu = setup.slots(), setup.cpu_seconds()
        took, _ = run_batch(setup, latency)
        cpu = setup.cpu_seconds() - cpu
        memory = setup.memory_mib()

    ideal = math.ceil(TASKS / slots) * latency
    score("prefork, default", took, ideal, memory)
    return {"took_s": took, "ideal_s": ideal,
            "ideal_all_at_once_s": latency, "slots": slots,
            "tasks": TASKS, "cpu_busy_pct": 100 * cpu / took}


def more_processes_cost_memory(settings):
    """More processes: more calls at once, and memory for each

    `--concurrency 10` forks ten processes: ten calls at once. Each one is a whole Python with
    Celery, the OpenAI client and its connections. PSS counts the pages a process shares with
    others in part, so the PSS of all of them is what the worker really holds.

    Result: {processes} processes: each child holds about {each_process_mib}
    ({each_process_rss_mib} resident), {memory_mib} in all.
    """
    latency = LATENCY / settings.sim_speed
    with running_workers("prefork", concurrency=10) as setup:
        took, _ = run_batch(setup, latency)
        ((main, children),) = setup.processes().items()
        each = [memory_mib(pid) for pid in children]
        memory = setup.memory_mib()

    ideal = math.ceil(TASKS / len(children)) * latency
    score("prefork x 10", took, ideal, memory)
    return {"took_s": took, "ideal_s": ideal,
            "processes": 1 + len(children),
            "each_process_mib": sum(m["pss"] for m in each) / len(each),
            "each_process_rss_mib": sum(m["rss"] for m in each) / len(each),
            "memory_mib": memory}


@shows(tasks._event_loop)
def threads_share_one_event_loop(settings):
    """A thread pool: ten calls at once in one process

    `--pool threads --concurrency 10` runs ten tasks at once on ten threads of ONE process.
    The course's tasks are ready for it (above, from tasks.py): a worker process keeps one
    event loop, in a thread of its own, with one AsyncOpenAI client, and each task hands its
    call to that loop (`run_async`). A loop per thread would need a client per thread.

    Result: {processes} process holding {memory_mib}; the tasks ran on {threads} threads
    and {event_loops} event loop.
    """
    latency = LATENCY / settings.sim_speed
    with running_workers("threads", concurrency=10) as setup:
        slots = setup.slots()
        took, runs = run_batch(setup, latency)
        processes, memory = len(setup.pids()), setup.memory_mib()

    ideal = math.ceil(TASKS / slots) * latency
    score("threads x 10", took, ideal, memory)
    return {"took_s": took, "ideal_s": ideal, "processes": processes,
            "memory_mib": memory,
            "threads": len({run["thread"] for run in runs}),
            "event_loops": len({(run["pid"], run["loop"]) for run in runs})}


@shows(tasks.ask_at_most)
def one_task_fans_out(settings):
    """One task, many calls: asyncio inside the task

    Lesson 02 inside a task: `ask_all` sends its prompts with `gather` and a semaphore, so
    ONE process keeps many calls in flight. But the task is one unit: its last call fails
    once here (a 500), and the retry asks every prompt again.

    Result: {calls} calls, {at_once} at a time, in one task on one process; one failed call
    made it run {attempts} times.
    """
    latency = LATENCY / settings.sim_speed
    prompts = [f"Question {n}" for n in range(TASKS)]
    at_once = 10  # calls in flight at a time, in the one task
    options = {"concurrency": at_once, "latency": latency}
    with running_workers("prefork", concurrency=1) as setup:
        with timer() as took:
            ask(setup, prompts, **options).get(timeout=120)
        with timer() as failing:
            run = ask(setup, prompts, fail_once=[TASKS - 1],
                      **options).get(timeout=120)
        memory = setup.memory_mib()

    ideal = math.ceil(TASKS / at_once) * latency
    score("one task, gather x 10", took.seconds, ideal, memory)
    return {"took_s": took.seconds, "ideal_s": ideal,
            "with_a_failure_s": failing.seconds, "calls": TASKS,
            "at_once": at_once, "attempts": run["attempts"]}


def several_workers_share_a_queue(settings):
    """Several workers on one Redis

    `docker compose up --scale worker=3` runs three copies of the worker; here, three local
    processes of the default worker on one queue. Each takes messages when it has a free
    slot, so their slots add up, and so does their memory: a way to use more machines.

    Result: {workers} workers, {slots} slots: {took_s}, {of_the_ideal_pct} of the ideal,
    holding {memory_mib} together.
    """
    latency = LATENCY / settings.sim_speed
    with running_workers("prefork", count=3) as setup:
        slots = setup.slots()
        took, runs = run_batch(setup, latency)
        worker_of = {pid: main
                     for main, children in setup.processes().items()
                     for pid in children}
        memory = setup.memory_mib()

    mains = sorted(set(worker_of.values()))
    shares = [{"worker": f"worker {number}",
               "tasks": sum(worker_of[run["pid"]] == main for run in runs)}
              for number, main in enumerate(mains, 1)]
    ideal = math.ceil(TASKS / slots) * latency
    row = score("3 default workers", took, ideal, memory)
    return {"tasks_per_worker": shares, "workers": len(shares),
            "slots": slots, "took_s": took, "memory_mib": memory,
            "of_the_ideal_pct": row["of_the_ideal_pct"]}


def autoscale_grows_the_pool(settings):
    """Autoscale: processes that come with the backlog

    `--autoscale 10,2` starts two prefork processes and forks more, up to ten, while tasks
    wait; after a while without work it stops them again. New processes start cold: their
    first call also makes the client and its connections.

    Result: {processes_at_start} processes at the start, {processes_at_the_end} when the
    batch was done.
    """
    latency = LATENCY / settings.sim_speed
    autoscale = ("--autoscale", "10,2")  # 2 processes, up to 10
    with running_workers("prefork", options=autoscale,
                         warm=False) as setup:
        (at_start,) = [len(kids) for kids in setup.processes().values()]
        took, _ = run_batch(setup, latency)
        (at_the_end,) = [len(kids) for kids in setup.processes().values()]
        memory = setup.memory_mib()

    ideal = math.ceil(TASKS / 10) * latency
    score("prefork, autoscale 2-10", took, ideal, memory)
    return {"took_s": took, "ideal_for_ten_s": ideal,
            "processes_at_start": at_start,
            "processes_at_the_end": at_the_end, "memory_mib": memory}


def prefetch_strands_tasks_behind_a_slow_one(settings):
    """Prefetch: tasks stranded behind a slow call

    A worker reserves messages ahead: its slots times the prefetch multiplier, counting the
    message of a running task (late acks). Two workers of one process each get one slow call
    (eight latencies), then six quick ones. With Celery's default multiplier, 4, the busy one
    reserves quick tasks it cannot start while the other runs dry; with the course's, 1, it
    takes nothing more until its call is done.

    Result: prefetch 4: {stranded_with_4} quick tasks waited behind the slow call;
    prefetch 1: {stranded_with_1}.
    """
    latency = LATENCY / settings.sim_speed
    figures = {}
    for multiplier in (4, 1):
        options = ("--prefetch-multiplier", str(multiplier))
        with running_workers("prefork", concurrency=1, count=2,
                             options=options) as setup:
            slow = ask(setup, ["Slow"], latency=8 * latency)
            while slow.state == "PENDING":  # until a worker runs it
                time.sleep(0.01)
            with timer() as quick_ones:
                quick = [ask(setup, [f"Quick {n}"], latency=latency)
                         for n in range(6)]
                runs = [result.get(timeout=120) for result in quick]
            slow_pid = slow.get(timeout=120)["pid"]

        figures[f"stranded_with_{multiplier}"] = sum(
            run["pid"] == slow_pid for run in runs)
        figures[f"quick_ones_with_{multiplier}_s"] = quick_ones.seconds
    return figures


WHEN = {  # what each setup suits, by the name its step scored it under
    "prefork, default": "CPU-heavy work, one per core",
    "prefork x 10": "tasks that may crash a process",
    "threads x 10": "LLM calls (the course's: 20)",
    "one task, gather x 10": "many calls for one job",
    "3 default workers": "more machines; a queue each",
    "prefork, autoscale 2-10": "prefork work in bursts",
}


@shows(score)
def which_setup_for_which_work():
    """The scorecard: which setup for which work

    Every setup above ran the same batch and wrote its line (`score`): calls a second, how
    close it came to the ideal of its slots, and the PSS of its processes. The course's
    worker (`make worker`, compose) is the thread pool, twenty threads. Run alone, this step
    has no figures.

    Result: {measured} of {setups} setups measured in this run.
    """
    empty = dict.fromkeys(
        ["calls_a_second", "of_the_ideal_pct", "memory_mib"])
    rows = [{"setup, and when": f"{name}\n{when}",
             **empty, **SCORECARD.get(name, {})}
            for name, when in WHEN.items()]
    return {"scorecard": rows, "setups": len(WHEN),
            "measured": sum(name in SCORECARD for name in WHEN)}


STEPS = [
    the_default_pool_waits_in_line,
    more_processes_cost_memory,
    threads_share_one_event_loop,
    one_task_fans_out,
    several_workers_share_a_queue,
    autoscale_grows_the_pool,
    prefetch_strands_tasks_behind_a_slow_one,
    which_setup_for_which_work,
]

if __name__ == "__main__":
    run(STEPS)
