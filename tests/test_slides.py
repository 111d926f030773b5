"""The decks in slides/: the course's conventions, the your-run filler, the diagrams.

Every check here runs over whatever decks and diagrams slides/ holds, so a new deck is checked
with no change to this file. The rendering in a real browser is in test_slides_browser.py.
"""
from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLIDES = ROOT / "slides"
sys.path.insert(0, str(SLIDES))

import deck_source  # noqa: E402
import make_slides  # noqa: E402
import your_run  # noqa: E402
from deck_source import check_code_blocks, check_deck, check_front_matter, read_deck  # noqa: E402

DECKS = deck_source.deck_files()
LESSON_DECKS = [deck for deck in DECKS if not deck.name.startswith("00_")]
DIAGRAMS = sorted((SLIDES / "diagrams").glob("*.svg"))
SVG = "{http://www.w3.org/2000/svg}"

HEAD = "---\nmarp: true\ntheme: course\npaginate: true\nfooter: Lesson 01 · asyncio basics\n---\n\n"
TITLE = "<!-- _class: lead -->\n<!-- _paginate: false -->\n\n# Lesson 01\n"
YOUR_RUN = ("\n---\n\n<!-- your-run -->\n\n## Your run\n\n"
            "Run `make lesson N=01`, then `make slides`: this slide shows your figures.\n")


def write_deck(folder: Path, body: str, name: str = "01_asyncio_basics.md") -> Path:
    deck = folder / name
    deck.write_text(HEAD + TITLE + body + YOUR_RUN, encoding="utf-8")
    return deck


def skeleton_text() -> str:
    """The deck skeleton slides/README.md offers to copy, as a deck authors start from."""
    readme = (SLIDES / "README.md").read_text(encoding="utf-8")
    match = re.search(r"## A deck to start from\n\n````markdown\n(.*?)\n````", readme, re.DOTALL)
    assert match, "slides/README.md has no skeleton deck under '## A deck to start from'"
    return match.group(1) + "\n"


def sample_run(lesson: str, steps: int = 2, complete: bool = True) -> dict:
    """A run record as the lesson runner writes it (course/runner/records.py)."""
    return {"lesson": lesson, "ran_at": "2026-11-27T10:00:00+00:00", "complete": complete,
            "steps": [{"number": n, "title": f"step {n} of the lesson: what it shows",
                       "figures": {"one_by_one_s": 2.513, "ideal_gather_s": 0.5, "gather_s": 0.504,
                                   "answers": ["a", "b"], "speedup_x": 4.98, "first_ms": 12.34,
                                   "share_pct": 97.4}}
                      for n in range(1, steps + 1)]}


# ---- the decks as they are ----


def test_there_is_an_overview_deck():
    assert SLIDES / "00_course.md" in DECKS


@pytest.mark.parametrize("deck", DECKS, ids=lambda deck: deck.name)
def test_every_deck_follows_the_course_conventions(deck):
    problems = check_deck(read_deck(deck))
    assert not problems, "\n".join(problems)


def test_every_deck_is_on_the_readme_course_map():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [deck.name for deck in DECKS if f"(slides/{deck.name})" not in readme]
    assert not missing, f"README.md's course map links no deck {missing}: add it to the lessons table"


def test_the_skeleton_deck_in_slides_readme_follows_the_conventions(tmp_path):
    (tmp_path / "diagrams").symlink_to(SLIDES / "diagrams")
    deck = tmp_path / "01_asyncio_basics.md"
    deck.write_text(skeleton_text(), encoding="utf-8")
    problems = check_deck(read_deck(deck))
    assert not problems, "\n".join(problems)


def test_every_lesson_deck_fills_its_your_run_slide_from_a_run(tmp_path):
    for deck in LESSON_DECKS:
        (tmp_path / f"{deck.stem}.json").write_text(json.dumps(sample_run(deck.stem)))
        filled, what = your_run.fill(deck, tmp_path)
        assert "your run of" in what, f"{deck.name}: {what}"
        assert "2.51 s" in filled and "5.0x" in filled, deck.name
        assert filled.count("<!-- your-run -->") == 0, f"{deck.name}: the placeholder is still there"


# ---- the conventions, each seen to fail on a deck that breaks it ----


def test_a_code_block_is_an_excerpt_of_the_file_it_names(tmp_path):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "lesson.py").write_text(
        "import asyncio\n\n\nasync def main():\n    results = await asyncio.gather(\n"
        "        call(1), call(2),\n    )\n    return results\n")
    deck = write_deck(tmp_path, "\n---\n\n## Gather\n\n<!-- code: modules/lesson.py -->\n```python\n"
                                "async def main():\n  results = await asyncio.gather(  # <- here\n"
                                "...\n  return results   \n```\n")
    assert check_code_blocks(read_deck(deck), root=tmp_path) == []


def test_a_block_that_is_not_an_excerpt_names_deck_slide_and_line(tmp_path):
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "lesson.py").write_text(
        "async def main():\n    first = await call(1)\n    second = await call(2)\n    return first\n")
    deck = write_deck(tmp_path, "\n---\n\n## Steps\n\n<!-- code: modules/lesson.py -->\n```python\n"
                                "async def main():\n    first = await call(1)\n"
                                "    return first\n```\n")
    problems = check_code_blocks(read_deck(deck), root=tmp_path)
    assert len(problems) == 1
    assert "01_asyncio_basics.md, slide 2" in problems[0]
    assert "line 3 of the block, `return first`" in problems[0]
    assert "second = await call(2)" in problems[0]  # where the file goes on instead


def test_lines_out_of_order_or_missing_are_no_excerpt(tmp_path):
    (tmp_path / "lesson.py").write_text("a = 1\nb = 2\nc = 3\n")
    for block in ("b = 2\n...\na = 1", "a = 1\nz = 26"):
        deck = write_deck(tmp_path, f"\n---\n\n<!-- code: lesson.py -->\n```python\n{block}\n```\n")
        problems = check_code_blocks(read_deck(deck), root=tmp_path)
        assert len(problems) == 1 and "not an excerpt of lesson.py" in problems[0], block


def test_a_python_block_must_name_its_file_and_the_file_must_exist(tmp_path):
    deck = write_deck(tmp_path, "\n---\n\n```python\nx = 1\n```\n\n---\n\n"
                                "<!-- code: modules/nowhere.py -->\n```python\nx = 1\n```\n\n---\n\n"
                                "<!-- code: modules/nowhere.py -->\n\nNo block follows.\n")
    problems = check_code_blocks(read_deck(deck), root=tmp_path)
    assert any("slide 2" in p and "needs `<!-- code: modules/FILE.py -->`" in p for p in problems)
    assert any("slide 3" in p and "names no file" in p for p in problems)
    assert any("slide 4" in p and "must stand right before" in p for p in problems)


def test_a_code_block_too_long_or_too_wide_for_a_slide_is_rejected(tmp_path):
    (tmp_path / "lesson.py").write_text("\n".join(f"x{n} = {n}" for n in range(20)) + "\n" + "y" * 70 + "\n")
    long_block = "\n".join(f"x{n} = {n}" for n in range(16))
    deck = write_deck(tmp_path, f"\n---\n\n<!-- code: lesson.py -->\n```python\n{long_block}\n```\n"
                                f"\n---\n\n<!-- code: lesson.py -->\n```python\n{'y' * 70}\n```\n")
    problems = check_code_blocks(read_deck(deck), root=tmp_path)
    assert any("slide 2" in p and "16 lines" in p for p in problems), problems
    assert any("slide 3" in p and "70 columns" in p for p in problems), problems


def test_a_slide_that_states_a_measured_figure_is_rejected(tmp_path):
    deck = write_deck(tmp_path, "\n---\n\n## Claims\n\n- gather is 5x faster\n- it took 2.5 s\n"
                                "- 98% of the calls\n- about 400 tasks/s\n\n"
                                "---\n\n## Fine\n\n- `LATENCY = 0.5` s per call\n- lesson 02, step 3\n"
                                "- the lesson measures the speedup\n<!-- 5x in a note is fine -->\n")
    problems = deck_source.check_stated_figures(read_deck(deck))
    stated = [re.search(r"`(.*?)`", p).group(1) for p in problems]
    assert stated == ["5x", "2.5 s", "98%", "400 tasks/s"], problems
    assert all("slide 2" in p for p in problems)


def test_front_matter_title_slide_and_your_run_slide_are_required(tmp_path):
    modules = tmp_path / "modules"
    modules.mkdir()
    deck = tmp_path / "01_asyncio_basics.md"
    deck.write_text("---\nmarp: true\ntheme: gaia\n---\n\n# Title\n\n---\n\n<!-- your-run -->\n\n"
                    "## Your run\n\n---\n\n## After it\n")
    problems = "\n".join(check_front_matter(read_deck(deck), modules=modules))
    for wanted in ("`theme: course`", "`paginate: true`", "`footer:`", "`<!-- _class: lead -->`",
                   "`<!-- _paginate: false -->`", "no lesson `modules/01_asyncio_basics.py`",
                   "the last slide, and only it, holds `<!-- your-run -->`"):
        assert wanted in problems, wanted
    (modules / "01_asyncio_basics.py").write_text("")
    good = write_deck(tmp_path, "")
    assert check_front_matter(read_deck(good), modules=modules) == []


def test_local_images_come_from_slides_diagrams(tmp_path):
    (tmp_path / "diagrams").mkdir()
    (tmp_path / "diagrams" / "there.svg").write_text("<svg/>")
    deck = write_deck(tmp_path, "\n---\n\n![bg right:40% fit](diagrams/there.svg)\n\n## A\n\n---\n\n"
                                "![](diagrams/gone.svg)\n\n---\n\n![](../docs/x.png)\n\n---\n\n"
                                "![](https://example.com/x.png)\n")
    problems = deck_source.check_images(read_deck(deck))
    assert len(problems) == 3, problems
    assert "slide 3" in problems[0] and "does not exist" in problems[0]
    assert "slide 4" in problems[1] and "outside slides/diagrams/" in problems[1]
    assert "slide 5" in problems[2] and "not a local file" in problems[2]


def test_slides_are_split_where_marp_splits_them(tmp_path):
    deck = write_deck(tmp_path, "\n---\n\n```text\n---\n```\n\n- a list\n\n***\n\n## Third\n")
    slides = read_deck(deck).slides
    assert [s.number for s in slides] == [1, 2, 3, 4]
    assert "```text\n---\n```" in slides[1].text and "- a list" in slides[1].text, "--- in code splits nothing"
    assert "## Third" not in slides[1].text and "## Third" in slides[2].text, "*** splits too"
    assert slides[3].your_run


# ---- your run: the learner's own figures ----


def test_your_run_shows_each_steps_headline_figures_with_units(tmp_path):
    deck = write_deck(tmp_path, "\n---\n\n## Middle\n")
    tracked = deck.read_text()
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "01_asyncio_basics.json").write_text(json.dumps(sample_run("01_asyncio_basics")))
    filled, what = your_run.fill(deck, runs)
    assert deck.read_text() == tracked, "the tracked deck must stay as it is"
    assert "your run of" in what
    last = read_deck(deck, filled).slides[-1]
    assert last.directives.get("_class") == "run"
    row = next(line for line in last.text.splitlines() if line.startswith("| 1 "))
    assert row == ("| 1 · step 1 of the lesson | **2.51 s**<br>*one by one* | **0.50 s**<br>*gather* "
                   "| **5.0x**<br>*speedup* |"), "the step's title up to its colon, three figures"
    assert "ideal" not in last.text, "ideal figures are not measured"
    assert "## Your run, 27 Nov 2026" in last.text
    assert "`make lesson N=01`, then `make slides`" in last.text
    assert "## Middle" in filled and filled.startswith(HEAD)


def test_a_long_run_is_split_over_slides_of_five_steps(tmp_path):
    deck = write_deck(tmp_path, "")
    (tmp_path / "01_asyncio_basics.json").write_text(json.dumps(sample_run("x", steps=9, complete=False)))
    filled, _ = your_run.fill(deck, tmp_path)
    slides = read_deck(deck, filled).slides
    assert re.search(r"## Your run, .* \(1/2\)", slides[-2].text)
    assert re.search(r"## Your run, .* \(2/2\)", slides[-1].text)
    rows = [line for s in slides[-2:] for line in s.text.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == 9
    assert "It stopped after step 9" in slides[-1].text


def test_units_follow_the_figure_names():
    shown = dict(your_run.headline_figures({"wait_s": 2.0, "call_ms": 12.34, "ratio_x": 3}))
    assert shown == {"wait": "2.00 s", "call": "12.3 ms", "ratio": "3.0x"}
    shown = dict(your_run.headline_figures({"ok": True, "text": "hi", "lost": 0, "share_pct": 97.4}))
    assert shown == {"lost": "0", "share": "97%"}


def test_without_a_run_the_deck_keeps_its_placeholder(tmp_path):
    deck = write_deck(tmp_path, "")
    filled, what = your_run.fill(deck, tmp_path / "no-runs")
    assert filled == deck.read_text()
    assert "`make lesson N=01` measures one" in what


def test_a_broken_run_file_is_reported_and_the_placeholder_kept(tmp_path):
    deck = write_deck(tmp_path, "")
    for broken in ("{not json", json.dumps({"lesson": "x"}), json.dumps({"steps": [{"figures": 3}]})):
        (tmp_path / "01_asyncio_basics.json").write_text(broken)
        filled, what = your_run.fill(deck, tmp_path)
        assert filled == deck.read_text()
        assert "not a run record the slides can read" in what and "run the lesson again" in what


def test_titles_and_values_cannot_break_the_table(tmp_path):
    deck = write_deck(tmp_path, "")
    run = sample_run("x", steps=1)
    run["steps"][0]["title"] = "a | b * c <x>"
    run["steps"][0]["figures"] = {"odd_name_|_s": 1.0}
    (tmp_path / "01_asyncio_basics.json").write_text(json.dumps(run))
    filled, _ = your_run.fill(deck, tmp_path)
    row = next(line for line in filled.splitlines() if line.startswith("| 1 "))
    assert row.replace("\\|", "").count("|") == 5, "four cells: the step and three figures"
    assert "\\<x\\>" in row and "\\*" in row


# ---- make slides without Node ----


def test_make_slides_says_how_to_get_node_when_npm_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_slides, "MARP", tmp_path / "no-marp")
    monkeypatch.setattr(make_slides, "DIST", tmp_path / "dist")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert make_slides.main(["--no-pdf"]) == 1
    said = capsys.readouterr().err
    assert "Node.js" in said and "npm" in said and "Marp for VS Code" in said


# ---- the diagrams ----


@pytest.mark.parametrize("svg", DIAGRAMS, ids=lambda path: path.name)
def test_every_diagram_is_a_plain_svg_with_a_viewbox_and_real_text(svg):
    root = ElementTree.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") and root.get("width") and root.get("height"), \
        f"{svg.name}: needs viewBox, width and height (the width gives the image its size in a slide)"
    assert root.find(f"{SVG}title") is not None, f"{svg.name}: a <title> says what it shows"
    assert root.findall(f".//{SVG}text"), f"{svg.name}: text must be real <text>"
    for banned in ("script", "foreignObject", "image"):
        assert not root.findall(f".//{SVG}{banned}"), f"{svg.name}: no <{banned}> in a diagram"
    assert not re.search(r"https?://(?!www\.w3\.org/)", svg.read_text()), f"{svg.name}: links outside"


def test_there_is_no_running_state_in_the_task_states_diagram():
    texts = [t.text or "" for t in ElementTree.parse(SLIDES / "diagrams" / "task-states.svg").iter(f"{SVG}text")]
    states = {word for text in texts for word in re.findall(r"\b[A-Z]{4,}\b", text)}
    assert {"PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "PROGRESS"} <= states
    drawn = [t for t in texts if t.strip() == "RUNNING"]
    assert not drawn, "Celery has no RUNNING state: do not draw one"


def test_every_diagram_is_listed_in_the_slides_readme():
    readme = (SLIDES / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\[([\w-]+\.svg)\]\(diagrams/\1\)", readme))
    assert listed == {svg.name for svg in DIAGRAMS}, "slides/README.md lists each diagram with what it shows"
