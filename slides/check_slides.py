"""Look at the rendered decks and the diagrams in a real (headless) Chromium, as a learner would.

For every slide of every HTML deck: nothing sticks out of the slide or hides in a scrolling
box, code blocks fit, every image and SVG background loaded, no slide is empty, no text is
too small to read from the back of a room. For every diagram: every text inside the picture,
large enough, not on top of another text. A PNG of every slide and diagram is written so a
person can look too.

    .venv/bin/python slides/check_slides.py     checks slides/dist/ (run `make slides` first)

Needs Playwright for Python (requirements-test.txt) and a Chromium: CHROME_PATH, or Debian's
`chromium` package (apt-get install chromium). Playwright never downloads a browser here.
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

SLIDES = Path(__file__).resolve().parent
DIAGRAMS = SLIDES / "diagrams"
PNG = SLIDES / "dist" / "png"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
SMALLEST_TEXT_PX = 20  # on a 1280x720 slide
SMALLEST_DIAGRAM_TEXT = 21  # in a diagram 1200 units wide, shown about 1140 px wide on a slide
TOLERANCE_PX = 2


def chromium_path() -> str | None:
    """The Chromium to drive: CHROME_PATH, else Debian's or another one on PATH."""
    wanted = os.environ.get("CHROME_PATH")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def browser():
    """One headless Chromium page for all the checks, with no network beyond local files."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if not path:
        raise RuntimeError("no Chromium: install Debian's `chromium` (apt-get install chromium) "
                           "or set CHROME_PATH")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        try:
            page = chromium.new_page()
            page.route("**/*", _local_only)
            yield page
        finally:
            chromium.close()


def _local_only(route):
    # The decks work offline: web fonts of the base theme are the only outside requests, and the
    # local fallback fonts are what the check must measure with.
    if route.request.url.startswith(("file:", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


# Runs in the page for one slide (an <svg data-marpit-svg>): returns the problems found in it.
MEASURE_SLIDE = """
async ([slide, smallest, tolerance]) => {
  const problems = [];
  const sections = [...slide.querySelectorAll(':scope > foreignObject > section')];
  const content = sections.find(s => !['background', 'pseudo'].includes(
      s.dataset.marpitAdvancedBackground)) || sections[0];
  if (!content) return ['no slide content at all'];
  const describe = el => {
    const text = (el.innerText || el.textContent || '').trim().replace(/\\s+/g, ' ');
    return `<${el.tagName.toLowerCase()}> "${text.slice(0, 50)}${text.length > 50 ? '…' : ''}"`;
  };
  const box = content.getBoundingClientRect();
  const scale = box.width / content.offsetWidth || 1;
  const style = getComputedStyle(content);
  const inner = {
    left: box.left + parseFloat(style.paddingLeft) * scale,
    right: box.right - parseFloat(style.paddingRight) * scale,
    top: box.top + parseFloat(style.paddingTop) * scale,
    bottom: box.bottom - parseFloat(style.paddingBottom) * scale,
  };
  const t = tolerance * scale;
  if (content.scrollWidth > content.clientWidth + tolerance) {
    problems.push(`the slide's content is ${content.scrollWidth} px wide, more than the slide's ` +
                  `${content.clientWidth}: part of it is cut off`);
  }
  const ignored = el => el.closest('footer, header') || el.tagName === 'BR';
  const flagged = [];  // report an element once, not again for each thing inside it
  const flag = (el, problem) => {
    if (flagged.some(f => f.contains(el))) return;
    flagged.push(el);
    problems.push(`${describe(el)} ${problem}`);
  };
  for (const el of content.querySelectorAll('*')) {
    if (ignored(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < inner.left - t || r.right > inner.right + t || r.top < inner.top - t
        || r.bottom > inner.bottom + t) {
      const by = Math.round(Math.max(inner.left - r.left, r.right - inner.right,
                                     inner.top - r.top, r.bottom - inner.bottom) / scale);
      flag(el, `sticks out of the slide's text area by ${by} px`);
    }
    // Wider than its box (a long code line), or a box that hides what it holds.
    const css = getComputedStyle(el);
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + tolerance) {
      flag(el, `is wider than its box (${el.scrollWidth} px in ${el.clientWidth})`);
    }
    if (el.clientHeight > 0 && css.overflowY !== 'visible' && el.scrollHeight > el.clientHeight + tolerance) {
      flag(el, `hides part of what it holds (${el.scrollHeight} px in ${el.clientHeight})`);
    }
    const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const size = parseFloat(css.fontSize);
    if (ownText && size < smallest) {
      problems.push(`${describe(el)} is set in ${size.toFixed(1)} px: at least ${smallest} px reads from the back`);
    }
  }
  const images = [...slide.querySelectorAll('img')];
  for (const img of images) {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push(`the image ${img.getAttribute('src')} did not load`);
    }
  }
  const urls = new Set();
  for (const el of slide.querySelectorAll('*')) {
    for (const m of getComputedStyle(el).backgroundImage.matchAll(/url\\("?(.*?)"?\\)/g)) urls.add(m[1]);
  }
  for (const url of urls) {
    const width = await new Promise(done => {
      const probe = new Image();
      probe.onload = () => done(probe.naturalWidth);
      probe.onerror = () => done(0);
      probe.src = url;
    });
    if (!width) problems.push(`the background image ${url} did not load`);
  }
  const clone = content.cloneNode(true);
  clone.querySelectorAll('footer, header').forEach(el => el.remove());
  if (!clone.textContent.trim() && images.length === 0 && urls.size === 0) {
    problems.push('the slide is empty');
  }
  return problems;
}
"""

MEASURE_DIAGRAM = """
([smallest, tolerance]) => {
  const svg = document.documentElement;
  const problems = [];
  const view = svg.viewBox.baseVal;
  if (!view || !view.width) return ['the SVG has no viewBox'];
  const texts = [...svg.querySelectorAll('text')];
  if (!texts.length) problems.push('the diagram has no <text>');
  const boxes = [];
  for (const text of texts) {
    const label = text.textContent.trim().replace(/\\s+/g, ' ');
    const size = parseFloat(getComputedStyle(text).fontSize) * 1200 / view.width;
    if (size < smallest) problems.push(`"${label}" is ${size.toFixed(1)} units high: at least ${smallest}`);
    const b = text.getBBox();
    const m = text.getCTM();
    const box = {x: b.x + m.e, y: b.y + m.f, right: b.x + m.e + b.width, bottom: b.y + m.f + b.height};
    if (box.x < view.x - tolerance || box.y < view.y - tolerance
        || box.right > view.x + view.width + tolerance || box.bottom > view.y + view.height + tolerance) {
      problems.push(`"${label}" sticks out of the picture`);
    }
    for (const [other, otherBox] of boxes) {
      const overlapX = Math.min(box.right, otherBox.right) - Math.max(box.x, otherBox.x);
      const overlapY = Math.min(box.bottom, otherBox.bottom) - Math.max(box.y, otherBox.y);
      if (overlapX > tolerance && overlapY > tolerance * 2) {
        problems.push(`"${label}" lies on top of "${other}"`);
      }
    }
    boxes.push([label, box]);
  }
  return problems;
}
"""


def check_deck_html(page, html: Path, png_folder: Path | None = None, only_class: str | None = None,
                    png_prefix: str = "") -> list[str]:
    """Every slide of one rendered deck (or only those of one class); a PNG of each into `png_folder`."""
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(html.resolve().as_uri())
    page.add_style_tag(content=".bespoke-marp-osc { display: none !important; }")
    page.evaluate("document.fonts.ready")
    # One call measures every slide: [slide number, its problems] for each slide checked.
    measured = page.evaluate(
        "async ([only, smallest, tolerance]) => {"
        f"  const measure = {MEASURE_SLIDE};"
        "  const slides = [...document.querySelectorAll('svg[data-marpit-svg]')];"
        "  const found = [];"
        "  for (const [index, slide] of slides.entries()) {"
        "    if (only && !slide.querySelector(`section.${only}`)) continue;"
        "    found.push([index + 1, await measure([slide, smallest, tolerance])]);"
        "  }"
        "  return [slides.length, found];"
        "}", [only_class, SMALLEST_TEXT_PX, TOLERANCE_PX])
    count, slides = measured
    problems = [] if count else [f"{html.name}: no slides"]
    for number, found in slides:
        problems += [f"{html.name}, slide {number}: {problem}" for problem in found]
        if png_folder:
            png_folder.mkdir(parents=True, exist_ok=True)
            page.evaluate(f"location.hash = '#{number}'")
            page.wait_for_function(
                "n => document.querySelectorAll('svg[data-marpit-svg]')[n - 1]"
                ".classList.contains('bespoke-marp-active')", arg=number)
            page.screenshot(path=str(png_folder / f"{png_prefix}{number:02d}.png"))
    return problems


def check_diagram(page, svg: Path, png_folder: Path | None) -> list[str]:
    """One diagram opened on its own: its texts, and a PNG of it."""
    page.set_viewport_size({"width": 1200, "height": 560})
    page.goto(svg.resolve().as_uri())
    problems = [f"{svg.name}: {problem}"
                for problem in page.evaluate(MEASURE_DIAGRAM, [SMALLEST_DIAGRAM_TEXT, TOLERANCE_PX])]
    if png_folder:
        png_folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(png_folder / f"{svg.stem}.png"))
    return problems


def check_all(dist: Path, png: Path = PNG, diagrams: Path = DIAGRAMS) -> list[str]:
    """Every deck rendered in `dist` and every diagram; PNGs under `png`."""
    problems = []
    with browser() as page:
        for html in sorted(dist.glob("*.html")):
            problems += check_deck_html(page, html, png / html.stem)
        for svg in sorted(diagrams.glob("*.svg")):
            problems += check_diagram(page, svg, png / "diagrams")
    return problems


if __name__ == "__main__":
    found = check_all(SLIDES / "dist")
    print("\n".join(found) or "Every slide and diagram fits.")
    print(f"PNGs: {PNG}")
    sys.exit(1 if found else 0)
