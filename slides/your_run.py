"""The "your run" slides: the figures of the learner's own last run of a lesson.

A lesson run leaves `.course-data/runs/<lesson file stem>.json`:

    {"lesson": "01_asyncio_basics", "ran_at": "2026-11-27T10:00:00+00:00", "complete": true,
     "steps": [{"number": 1, "title": "gather: start them all, wait once",
                "figures": {"one_by_one_s": 2.51, "gather_s": 0.5, "speedup_x": 5.0}}]}

`make slides` replaces the deck's slide that holds `<!-- your-run -->` with a table of each
step's headline figures (in a copy of the deck: the tracked .md keeps its placeholder).
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from course.runner.numbers import figure, label
from course.settings import DATA

from deck_source import read_deck

RUNS = DATA / "runs"  # where the lesson runner keeps each lesson's last run
FIGURES_PER_STEP = 3
STEPS_PER_SLIDE = 5  # one row per step, two lines high: five fit under the heading
LABEL_CHARS = 16  # one line of a figure's cell
STEP_CHARS = 22  # two lines of the step column


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a space where there is one: "a long title…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut.strip():
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def escape(text: str) -> str:
    """Text as markdown shows it literally, also inside a table cell."""
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    return text


def headline_figures(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The first few measured numbers of a step, as (label, value): ideals, texts, lists and the
    figures the lesson keeps only for the record (`_name`) left out."""
    chosen = []
    for name, value in figures.items():
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or name.startswith(("ideal_", "_"))):
            continue
        chosen.append((shorten(label(name), LABEL_CHARS), figure(name, value)))
        if len(chosen) == FIGURES_PER_STEP:
            break
    return chosen


def step_name(step: dict[str, Any]) -> str:
    """ "gather: start them all, wait once" -> "gather": the idea the step is named after."""
    title = str(step.get("title") or "").replace("`", "")
    head, colon, _ = title.partition(":")
    return shorten(head.strip() if colon else title.strip(), STEP_CHARS)


def load_run(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run in `path`, or None and why it cannot be shown (None, None when there is no run)."""
    if not path.is_file():
        return None, None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        steps = run["steps"]
        if not isinstance(steps, list) or not all(isinstance(s.get("figures"), dict) for s in steps):
            raise ValueError("steps without figures")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return None, f"{path} is not a run record the slides can read ({error}): run the lesson again"
    return run, None


def when(ran_at: str) -> str:
    """ "2026-11-27T10:00:00+00:00" -> "27 Nov 2026 10:00" in the learner's own time zone."""
    try:
        return datetime.fromisoformat(ran_at).astimezone().strftime("%d %b %Y %H:%M")
    except (TypeError, ValueError):
        return "an unknown date"


def run_slides(run: dict[str, Any], number: str) -> list[str]:
    """The markdown of the your-run slide(s) for one run: one row per step that measured something.

    A row is the step's name, then up to three cells of a value over its label.
    """
    rows = []
    for step in run["steps"]:
        shown = headline_figures(step["figures"])
        if shown:
            cells = [f"**{escape(value)}**<br>*{escape(name)}*" for name, value in shown]
            cells += [""] * (FIGURES_PER_STEP - len(cells))
            rows.append(f"| {escape(str(step.get('number', '')))} · {escape(step_name(step))} | "
                        + " | ".join(cells) + " |")
    if not rows:
        return []
    numbers = [step.get("number") for step in run["steps"]]
    stopped = "" if run.get("complete") or not numbers else f"It stopped after step {numbers[-1]}. "
    note = f"> {stopped}Again: `make lesson N={number}`, then `make slides`."
    pages = [rows[i:i + STEPS_PER_SLIDE] for i in range(0, len(rows), STEPS_PER_SLIDE)]
    slides = []
    for index, page in enumerate(pages, start=1):
        part = f" ({index}/{len(pages)})" if len(pages) > 1 else ""
        slides.append("\n".join([
            "<!-- _class: run -->", "", f"## Your run, {when(run.get('ran_at', ''))}{part}", "",
            "| step |" + " |" * FIGURES_PER_STEP, "|---" * (FIGURES_PER_STEP + 1) + "|", *page, "",
            note, "",
        ]))
    return slides


def fill(deck_path: Path, runs: Path = RUNS) -> tuple[str, str]:
    """The deck's text with its your-run slide filled from the lesson's last run, and a line on what was done."""
    text = deck_path.read_text(encoding="utf-8")
    deck = read_deck(deck_path, text)
    marked = [slide for slide in deck.slides if slide.your_run]
    if not marked:
        return text, "no your-run slide"
    run, problem = load_run(runs / f"{deck_path.stem}.json")
    if problem:
        return text, problem
    if run is None:
        return text, f"no run yet: `make lesson N={deck.number}` measures one"
    filled = run_slides(run, deck.number)
    if not filled:
        return text, "the last run measured no figures to show"
    slide = marked[0]
    lines = text.split("\n")
    new = "\n\n---\n\n".join(filled)
    return "\n".join(lines[: slide.start] + ["", new] + lines[slide.end:]), f"your run of {when(run.get('ran_at', ''))}"
