"""Every deck rendered by the pinned Marp CLI and looked at in a real headless Chromium.

One CLI call renders every deck twice (as tracked, and with a sample run in its your-run slide),
one more renders the PDFs, one browser checks every slide and every diagram and writes a PNG of
each to slides/dist/png/. Needs npm (or an installed slides/node_modules) and a Chromium; without
them this file is skipped with a message that says how to get them.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLIDES = ROOT / "slides"
sys.path.insert(0, str(SLIDES))

import check_slides  # noqa: E402
import make_slides  # noqa: E402
from deck_source import deck_files, read_deck  # noqa: E402
from test_slides import skeleton_text  # noqa: E402

HOW_TO_ENABLE = ("install Chromium and Node.js with npm (Debian, as root: apt-get install -y chromium "
                 "nodejs npm; `.ci/run` does it), or set CHROME_PATH to a Chrome or Chromium")

if not check_slides.chromium_path():
    pytest.skip(f"no Chromium to look at the slides: {HOW_TO_ENABLE}", allow_module_level=True)
if not make_slides.MARP.exists() and not (shutil.which("npm") and shutil.which("node")):
    pytest.skip(f"no npm to install the Marp CLI: {HOW_TO_ENABLE}", allow_module_level=True)

DECKS = deck_files()


def long_run(lesson: str) -> dict:
    """A run as wide as the runner writes them: nine steps, long titles, long figure names."""
    return {"lesson": lesson, "ran_at": "2026-11-27T10:00:00+00:00", "complete": False,
            "steps": [{"number": n, "title": "one_request_per_text with a long title and no colon",
                       "figures": {"one_request_per_text_s": 12.345, "one_batched_request_s": 0.512,
                                   "sustained_requests_per_minute": 598.7, "of_the_limit_pct": 99.8}}
                      for n in range(1, 10)]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every deck as tracked (`as-is/`) and with a long run filled in (`with-run/`), to HTML and PDF.

    The skeleton deck of slides/README.md is rendered with them: it stands for every lesson deck
    still to be written. Returns the build folder and the decks rendered.
    """
    build = tmp_path_factory.mktemp("slides")
    skeleton = build / "src" / "01_skeleton.md"
    skeleton.parent.mkdir()
    skeleton.write_text(skeleton_text(), encoding="utf-8")
    decks = DECKS + [skeleton]
    runs = build / "runs"
    runs.mkdir()
    for deck in decks:
        (runs / f"{deck.stem}.json").write_text(json.dumps(long_run(deck.stem)))
    make_slides.prepare(build / "as-is", runs=build / "no-runs", decks=decks)
    make_slides.prepare(build / "with-run", runs=runs, decks=decks)
    make_slides.render(build)
    make_slides.render(build / "as-is", pdf=True, browser=check_slides.chromium_path())
    return build, decks


@pytest.fixture(scope="module")
def page():
    """One page of one headless Chromium for every check in this file."""
    with check_slides.browser() as browser_page:
        yield browser_page


def test_every_deck_renders_to_html_with_all_its_slides(rendered):
    build, decks = rendered
    for deck in decks:
        html = build / "as-is" / f"{deck.stem}.html"
        assert html.is_file(), f"{deck.name} did not render"
        rendered_slides = html.read_text(encoding="utf-8").count("<svg data-marpit-svg")
        slides = len(read_deck(deck).slides)
        assert rendered_slides == slides, f"{deck.name}: {rendered_slides} slides rendered of {slides}"


def test_every_deck_renders_to_pdf_with_a_page_per_slide(rendered):
    from pypdf import PdfReader

    build, decks = rendered
    for deck in decks:
        pdf = build / "as-is" / f"{deck.stem}.pdf"
        assert pdf.is_file(), f"{deck.name}: no PDF"
        pages, slides = len(PdfReader(pdf).pages), len(read_deck(deck).slides)
        assert pages == slides, f"{deck.name}: {pages} PDF pages for {slides} slides"


def test_every_slide_fits_loads_its_images_and_is_readable(rendered, page):
    """Each slide as tracked, and each filled your-run slide, in one headless Chromium."""
    build, decks = rendered
    problems = []
    for deck in decks:
        png = check_slides.PNG / deck.stem
        shutil.rmtree(png, ignore_errors=True)
        problems += check_slides.check_deck_html(page, build / "as-is" / f"{deck.stem}.html", png)
        if not deck.name.startswith("00_"):
            problems += check_slides.check_deck_html(
                page, build / "with-run" / f"{deck.stem}.html", png,
                only_class="run", png_prefix="your-run-")
    assert not problems, "\n".join(problems) + f"\nPNGs of every slide: {check_slides.PNG}"


def test_every_diagram_keeps_its_text_inside_and_apart(page):
    problems = [problem for svg in sorted(check_slides.DIAGRAMS.glob("*.svg"))
                for problem in check_slides.check_diagram(page, svg, check_slides.PNG / "diagrams")]
    assert not problems, "\n".join(problems)


def test_the_check_sees_what_does_not_fit(page, tmp_path):
    """The browser check itself: a deck built to break every rule is caught on every slide."""
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copytree(SLIDES / "diagrams", bad / "diagrams")
    (bad / "99_bad.md").write_text(
        "---\nmarp: true\ntheme: course\nfooter: bad\n---\n\n"
        "## Wide\n\n```text\n" + "x" * 100 + "\n```\n\n---\n\n"
        "## Long\n\n" + "".join(f"- item {n}\n" for n in range(12)) + "\n---\n\n"
        "![](diagrams/missing.svg)\n\n---\n\n![bg right](diagrams/missing-too.svg)\n\n## Bg\n\n---\n\n"
        "<!-- _class: lead -->\n\n---\n\n<!-- _class: diagram -->\n\n## Fine\n\n![](diagrams/task-states.svg)\n")
    make_slides.render(bad)
    problems = check_slides.check_deck_html(page, bad / "99_bad.html")
    by_slide = {n: [p for p in problems if f"slide {n}:" in p] for n in range(1, 7)}
    assert any("wider than" in p for p in by_slide[1]), problems
    assert any("sticks out" in p for p in by_slide[2]), problems
    assert any("missing.svg did not load" in p for p in by_slide[3]), problems
    assert any("missing-too.svg did not load" in p for p in by_slide[4]), problems
    assert by_slide[5] == ["99_bad.html, slide 5: the slide is empty"], problems
    assert by_slide[6] == [], problems


def test_the_diagram_check_sees_text_that_overlaps_leaves_or_is_too_small(page, tmp_path):
    svg = tmp_path / "bad.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1200 560" width="1200" height="560">'
                   '<text x="100" y="100" font-size="26">first label</text>'
                   '<text x="110" y="105" font-size="26">on top of it</text>'
                   '<text x="1150" y="300" font-size="26">past the edge</text>'
                   '<text x="100" y="400" font-size="12">tiny</text></svg>')
    problems = check_slides.check_diagram(page, svg, None)
    assert problems == ['bad.svg: "on top of it" lies on top of "first label"',
                        'bad.svg: "past the edge" sticks out of the picture',
                        'bad.svg: "tiny" is 12.0 units high: at least 21'], problems
