"""`make slides`: every deck to HTML (and PDF when a Chromium is found) in slides/dist/.

Each deck is copied to slides/dist/ with its your-run slide filled from the lesson's last run
(the tracked .md is never changed), next to a copy of slides/diagrams/, then rendered by the
Marp CLI pinned in slides/package-lock.json (installed with `npm ci` on first use).

    .venv/bin/python slides/make_slides.py            what `make slides` runs
    .venv/bin/python slides/make_slides.py --no-pdf   HTML only
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from deck_source import ROOT, SLIDES, deck_files
from your_run import RUNS, fill

DIST = SLIDES / "dist"
MARP = SLIDES / "node_modules" / ".bin" / "marp"
CONFIG = SLIDES / ".marprc.yml"
LOCK = SLIDES / "package-lock.json"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge",
            "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Chromium.app/Contents/MacOS/Chromium")

NO_NODE = """\
The slides are rendered by the Marp CLI, which needs Node.js 18 or newer with npm.
  Debian/Ubuntu: sudo apt-get install nodejs npm     macOS: brew install node
  or the installer from nodejs.org; then run `make slides` again.
Meanwhile the decks read as they are: open slides/*.md in VS Code with the "Marp for VS Code"
extension (the repository's .vscode/settings.json adds the course theme to its preview)."""


class CannotRender(Exception):
    """`make slides` cannot go on; the message says what to do."""


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def find_browser() -> str | None:
    """A Chrome or Chromium for the PDF: CHROME_PATH first, then the usual names."""
    if os.environ.get("CHROME_PATH"):
        return os.environ["CHROME_PATH"] if Path(os.environ["CHROME_PATH"]).exists() else None
    for name in BROWSERS:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


@contextlib.contextmanager
def one_install_at_a_time():
    """Two renders at once (two terminals, or test processes) must not run `npm ci` together:
    each empties node_modules/ under the other. The second waits, then finds the CLI installed."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one `make slides` at a time
        yield
        return
    with open(SLIDES / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_marp() -> Path:
    """The pinned Marp CLI, installed from the lock file on first use and when the lock file changes."""
    installed = SLIDES / "node_modules" / ".package-lock.json"  # npm ci writes it
    with one_install_at_a_time():
        if MARP.exists() and installed.exists() and installed.stat().st_mtime >= LOCK.stat().st_mtime:
            return MARP
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            raise CannotRender(NO_NODE)
        print("Installing the Marp CLI pinned in slides/package-lock.json (npm ci, first use only)…")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SLIDES)
        if done.returncode != 0 or not MARP.exists():
            raise CannotRender("`npm ci` in slides/ failed (see above). Check that the npm registry is "
                               "reachable, then run `make slides` again.")
        return MARP


def prepare(out: Path, runs: Path = RUNS, decks: list[Path] | None = None) -> list[str]:
    """Copy every deck to `out` with its your-run slide filled; copy the diagrams. Says what it did."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "diagrams", ignore_errors=True)
    shutil.copytree(SLIDES / "diagrams", out / "diagrams")
    report = []
    for deck in deck_files() if decks is None else decks:
        text, what = fill(deck, runs)
        # The copy sits one folder deeper: point ../docs/... links back at the repository.
        text = text.replace("](../", f"]({os.path.relpath(ROOT, out)}/")
        (out / deck.name).write_text(text, encoding="utf-8")
        report.append(f"{deck.name}: {what}")
    return report


def render(folder: Path, pdf: bool = False, browser: str | None = None) -> None:
    """Every deck in `folder` (and its subfolders) to HTML, or to PDF, next to the .md files."""
    command = [str(ensure_marp()), "--config-file", str(CONFIG), "--input-dir", str(folder),
               "--output", str(folder)]
    env = dict(os.environ)
    if pdf:
        command += ["--pdf"]
        env["CHROME_PATH"] = browser or ""  # the Marp CLI runs it without its sandbox as root
    done = subprocess.run(command, cwd=SLIDES, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise CannotRender(f"The Marp CLI failed:\n{done.stdout}{done.stderr}".rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the course's decks to slides/dist/.")
    parser.add_argument("--no-pdf", action="store_true", help="HTML only, even with a Chromium")
    args = parser.parse_args(argv)
    try:
        print("The decks, with your last run of each lesson:")
        for line in prepare(DIST):
            print(f"  {line}")
        render(DIST)
        print(f"HTML: {relative(DIST)}/*.html; start with {relative(DIST / '00_course.html')} "
              f"(in a browser: arrows move, F full screen, P presenter view)")
        browser = None if args.no_pdf else find_browser()
        if browser:
            render(DIST, pdf=True, browser=browser)
            print(f"PDF:  {relative(DIST)}/*.pdf")
        elif not args.no_pdf:
            print("PDF:  skipped, no Chrome or Chromium found (install one, or set CHROME_PATH to it)")
    except CannotRender as stop:
        print(stop, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
