"""Read a deck of the course (a Marp markdown file) and check it against the course's conventions.

The conventions (slides/README.md explains them to deck authors):
- Decks are `slides/NN_<lesson>.md`, named after the lesson file `modules/NN_<lesson>.py`
  (`00_course.md` is the overview). Front matter: `marp: true`, `theme: course`,
  `paginate: true`, `footer: ...`; the first slide has `_class: lead` and `_paginate: false`.
- A fenced code block right after `<!-- code: PATH -->` is an excerpt of PATH (relative to the
  repository): its lines appear in that file, in order and next to each other, ignoring
  indentation, trailing spaces and blank lines; a line `...` stands for lines left out; a
  trailing `# <-` comment marks the line the slide talks about and is not compared.
  Every Python block must be such an excerpt.
- A lesson deck's last slide holds `<!-- your-run -->`: `make slides` fills it with the
  learner's own figures.
- No slide states a measured number as a fact: a number with a unit (`2.5 s`, `5x`, `40%`,
  `300 tasks/s`) in a slide's prose is rejected; settings go in `code`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

SLIDES = Path(__file__).resolve().parent
ROOT = SLIDES.parent
MAX_CODE_LINES = 15  # what fits under a heading at the theme's code size
MAX_CODE_COLUMNS = 60  # readable from the back of a room

CODE_COMMENT = re.compile(r"^<!--\s*code:\s*(\S+)\s*-->\s*$")
YOUR_RUN = re.compile(r"<!--\s*your-run\s*-->")
MARKER = re.compile(r"\s+#\s*<-.*$")  # "x = 1  # <- this one": the marker is not part of the code
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
# A number with a unit of time, a ratio, a share or a rate: what a lesson measures, not states.
STATED_FIGURE = re.compile(
    r"(?<![\w.])\d+(?:[.,]\d+)?\s?"
    r"(?:x\b|×|%|ms\b|s\b|sec\b|seconds?\b|minutes?\b|(?:tasks|calls|requests|req|tokens)/s\b)"
)


@dataclass
class CodeBlock:
    slide: int  # 1-based, as the slide's page number
    line: int  # 1-based line of the opening fence in the deck
    language: str
    lines: list[str]
    source: str | None  # the file named by <!-- code: ... -->, if any


@dataclass
class Slide:
    number: int
    start: int  # 0-based first line in the deck
    end: int  # 0-based line after the slide
    text: str
    directives: dict[str, str] = field(default_factory=dict)
    your_run: bool = False


@dataclass
class Deck:
    path: Path
    front_matter: dict[str, str]
    slides: list[Slide]
    code_blocks: list[CodeBlock]
    problems: list[str]  # what could not be read the course's way

    @property
    def name(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)

    @property
    def number(self) -> str:
        return self.path.name[:2]


def deck_files(folder: Path = SLIDES) -> list[Path]:
    """The decks: `NN_name.md` at the top of slides/."""
    return sorted(folder.glob("[0-9][0-9]_*.md"))


def parse_front_matter(text: str) -> tuple[dict[str, str], int]:
    """The `key: value` lines of the front matter, and how many lines it takes."""
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, 0
    values = {}
    for line in match.group(1).splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() and not key.startswith((" ", "#")):
            values[key.strip()] = value.strip().strip("'\"")
    return values, match.group(0).count("\n")


def _comment_directives(html: str) -> dict[str, str]:
    """`<!-- _class: lead -->` -> {"_class": "lead"}: the directives Marp reads from a comment."""
    body = html.strip()
    if not (body.startswith("<!--") and body.endswith("-->")):
        return {}
    values = {}
    for line in body[4:-3].splitlines():
        key, colon, value = line.partition(":")
        if colon and re.fullmatch(r"\s*_?[A-Za-z]+\s*", key):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def read_deck(path: Path, text: str | None = None) -> Deck:
    """Split a deck into slides and code blocks, the way Marp splits it (at top-level `---`)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    front, front_lines = parse_front_matter(text)
    lines = text.splitlines()
    # Blank out the front matter so markdown-it does not read it as a rule and a heading,
    # while every line keeps its number.
    body = "\n".join([""] * front_lines + lines[front_lines:])
    tokens = MarkdownIt("commonmark").parse(body)

    breaks = [token.map[0] for token in tokens if token.type == "hr" and token.level == 0]
    bounds = [front_lines] + [b + 1 for b in breaks]
    ends = breaks + [len(lines)]
    slides = [Slide(number=i + 1, start=s, end=e, text="\n".join(lines[s:e]))
              for i, (s, e) in enumerate(zip(bounds, ends))]

    def slide_at(line: int) -> Slide:
        return next(s for s in reversed(slides) if s.start <= line)

    blocks: list[CodeBlock] = []
    problems: list[str] = []
    pending: tuple[str, int] | None = None  # a code comment waiting for its block
    for token in tokens:
        if token.level != 0 or token.map is None:
            continue
        slide = slide_at(token.map[0])
        if token.type == "html_block":
            slide.directives.update(_comment_directives(token.content))
            if YOUR_RUN.search(token.content):
                slide.your_run = True
        if pending and token.type != "fence":
            problems.append(f"{path.name}, slide {slide_at(pending[1]).number} (line {pending[1] + 1}): "
                            f"`<!-- code: {pending[0]} -->` must stand right before a ``` code block")
            pending = None
        if token.type == "html_block":
            match = CODE_COMMENT.match(token.content.strip())
            if match:
                pending = (match.group(1), token.map[0])
        elif token.type == "fence":
            language = token.info.strip().split(" ")[0].lower()
            blocks.append(CodeBlock(slide=slide.number, line=token.map[0] + 1, language=language,
                                    lines=token.content.rstrip("\n").split("\n"),
                                    source=pending[0] if pending else None))
            pending = None
    if pending:
        problems.append(f"{path.name}, slide {slide_at(pending[1]).number}: "
                        f"`<!-- code: {pending[0]} -->` must stand right before a ``` code block")
    return Deck(path=path, front_matter=front, slides=slides, code_blocks=blocks, problems=problems)


# ---- the checks: each returns a list of problems, each naming the deck and the slide ----


def _normalised(line: str) -> str:
    return MARKER.sub("", line).strip()


def excerpt_mismatch(block_lines: list[str], file_lines: list[str]) -> str | None:
    """None when the block is an excerpt of the file; else which line does not follow, and why.

    Blank lines are ignored on both sides. Runs of block lines between `...` lines must appear
    next to each other in the file, each run after the one before it.
    """
    wanted = [_normalised(line) for line in block_lines]
    runs: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(wanted, start=1):
        if line == "...":
            runs.append([])
        elif line:
            runs[-1].append((number, line))
    have = [(number, line.strip()) for number, line in enumerate(file_lines, start=1) if line.strip()]
    position = 0
    for run in (run for run in runs if run):
        best, best_at = -1, None
        for start in range(position, len(have)):
            matched = 0
            while (matched < len(run) and start + matched < len(have)
                   and have[start + matched][1] == run[matched][1]):
                matched += 1
            if matched == len(run):
                position = start + matched
                break
            if matched > best:
                best, best_at = matched, start
        else:
            number, line = run[max(best, 0)]
            if best <= 0:
                return f"line {number} of the block, `{line}`, is not in the file after the lines before it"
            file_line = have[best_at + best][0] if best_at + best < len(have) else len(file_lines)
            return (f"line {number} of the block, `{line}`, does not follow the line before it "
                    f"(the file goes on at its line {file_line} with "
                    f"`{file_lines[file_line - 1].strip() if file_line <= len(file_lines) else ''}`; "
                    f"put a `...` line where lines are left out)")
    return None


def check_code_blocks(deck: Deck, root: Path = ROOT) -> list[str]:
    """Every code block that names its file is an excerpt of it; every Python block names one."""
    problems = list(deck.problems)
    for block in deck.code_blocks:
        where = f"{deck.name}, slide {block.slide} (line {block.line})"
        if len(block.lines) > MAX_CODE_LINES:
            problems.append(f"{where}: the code block has {len(block.lines)} lines; at most "
                            f"{MAX_CODE_LINES} fit a slide: leave lines out with `...` or split it")
        for number, line in enumerate(block.lines, start=1):
            if len(line.rstrip()) > MAX_CODE_COLUMNS:
                problems.append(f"{where}: line {number} of the code block is {len(line.rstrip())} "
                                f"columns wide; at most {MAX_CODE_COLUMNS} are readable: dedent the "
                                f"block or show a shorter part")
        if block.source is None:
            if block.language in ("python", "py", "python3"):
                problems.append(f"{where}: a Python block needs `<!-- code: modules/FILE.py -->` on "
                                f"the line before it, naming the file it is an excerpt of")
            continue
        source = (root / block.source).resolve()
        if not source.is_relative_to(root) or not source.is_file():
            problems.append(f"{where}: `<!-- code: {block.source} -->` names no file of the "
                            f"repository (paths are relative to the repository's top folder)")
            continue
        mismatch = excerpt_mismatch(block.lines, source.read_text(encoding="utf-8").splitlines())
        if mismatch:
            problems.append(f"{where}: the block is not an excerpt of {block.source}: {mismatch}")
    return problems


def prose(slide_text: str) -> str:
    """A slide's text without code blocks, inline code and comments: what it states."""
    text = re.sub(r"^(```|~~~).*?^\1", "", slide_text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"(`+).+?\1", "", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # image options such as bg right:40%
    return text


def check_front_matter(deck: Deck, modules: Path = ROOT / "modules") -> list[str]:
    """Front matter, the title slide, the file name and the your-run slide."""
    problems = []
    front = deck.front_matter
    for key, wanted in (("marp", "true"), ("theme", "course"), ("paginate", "true")):
        if front.get(key) != wanted:
            problems.append(f"{deck.name}: the front matter needs `{key}: {wanted}`")
    if not front.get("footer"):
        problems.append(f"{deck.name}: the front matter needs a `footer:` with the lesson's name, "
                        f"e.g. `footer: Lesson 01 · asyncio basics`")
    elif deck.number != "00" and not front["footer"].startswith(f"Lesson {deck.number}"):
        problems.append(f"{deck.name}: the footer should start with `Lesson {deck.number}`, "
                        f"not `{front['footer']}`")
    first = deck.slides[0].directives if deck.slides else {}
    if "lead" not in first.get("_class", "").split():
        problems.append(f"{deck.name}, slide 1: the title slide needs `<!-- _class: lead -->`")
    if first.get("_paginate") != "false":
        problems.append(f"{deck.name}, slide 1: the title slide needs `<!-- _paginate: false -->`")

    runs = [slide.number for slide in deck.slides if slide.your_run]
    if deck.number == "00":
        return problems
    lesson = modules / f"{deck.path.stem}.py"
    if not lesson.is_file():
        problems.append(f"{deck.name}: no lesson `modules/{deck.path.stem}.py`: a deck is named "
                        f"after its lesson file, so `make slides` finds the lesson's last run")
    if runs != [len(deck.slides)]:
        problems.append(f"{deck.name}: the last slide, and only it, holds `<!-- your-run -->` "
                        f"(found on slides {runs or 'none'} of {len(deck.slides)})")
    elif not all(f in deck.slides[-1].text for f in (f"make lesson N={deck.number}", "make slides")):
        problems.append(f"{deck.name}, slide {len(deck.slides)}: the your-run slide says how to fill "
                        f"it: `make lesson N={deck.number}`, then `make slides`")
    return problems


def check_stated_figures(deck: Deck) -> list[str]:
    """No slide states a measured number as a fact."""
    problems = []
    for slide in deck.slides:
        for match in STATED_FIGURE.finditer(prose(slide.text)):
            problems.append(f"{deck.name}, slide {slide.number}: `{match.group(0).strip()}` reads as a "
                            f"measured figure; a slide says what the lesson measures, the learner's "
                            f"run shows the number (a setting goes in `code`)")
    return problems


def check_images(deck: Deck) -> list[str]:
    """Local images live in slides/diagrams/, which `make slides` copies next to the HTML."""
    problems = []
    for slide in deck.slides:
        for target in re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", prose_with_images(slide.text)):
            if re.match(r"^[a-z]+:", target):
                problems.append(f"{deck.name}, slide {slide.number}: `{target}` is not a local file: "
                                f"the decks work offline, put it in slides/diagrams/")
            elif not target.startswith("diagrams/"):
                problems.append(f"{deck.name}, slide {slide.number}: `{target}` is outside "
                                f"slides/diagrams/, the only folder `make slides` copies")
            elif not (deck.path.parent / target).is_file():
                problems.append(f"{deck.name}, slide {slide.number}: `{target}` does not exist")
    return problems


def prose_with_images(slide_text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1", "", slide_text, flags=re.DOTALL | re.MULTILINE)
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def check_deck(deck: Deck) -> list[str]:
    """Every convention a deck of the course follows."""
    return (check_front_matter(deck) + check_code_blocks(deck)
            + check_stated_figures(deck) + check_images(deck))


if __name__ == "__main__":
    import sys

    # .venv/bin/python slides/deck_source.py [slides/01_x.md ...]: the conventions, deck by deck.
    paths = [Path(arg).resolve() for arg in sys.argv[1:]] or deck_files()
    found = [problem for path in paths for problem in check_deck(read_deck(path))]
    print("\n".join(found) or f"{len(paths)} deck(s) follow the conventions.")
    sys.exit(1 if found else 0)
