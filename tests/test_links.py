"""Every relative link and image in README.md, docs/ and slides/ points at something that exists."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("slides/dist/", "slides/node_modules/")
HTML_TARGET = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")


def documents() -> list[Path]:
    found = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("slides/**/*.md")]
    return sorted(p for p in found if not str(p.relative_to(ROOT)).startswith(SKIP))


def targets(text: str) -> list[str]:
    """The link and image targets markdown would follow (not those inside code)."""
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type in ("html_block",):
            found += HTML_TARGET.findall(token.content)
        for child in token.children or []:
            if child.type == "link_open":
                found.append(child.attrs.get("href", ""))
            elif child.type == "image":
                found.append(child.attrs.get("src", ""))
            elif child.type == "html_inline":
                found += HTML_TARGET.findall(child.content)
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    tokens = MarkdownIt("commonmark").parse(document.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    result = set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type == "heading_open":
            base = slug(inline.content)
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(document: Path) -> list[str]:
    problems = []
    for target in targets(document.read_text(encoding="utf-8")):
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # a web address (http:, https:, mailto:) is not checked offline
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part.partition("?")[0])
        where = (document.parent / path_part).resolve() if path_part else document
        name = document.relative_to(ROOT)
        if not where.is_relative_to(ROOT):
            problems.append(f"{name}: `{target}` points outside the repository")
        elif not where.exists():
            problems.append(f"{name}: `{target}` does not exist")
        elif fragment and where.suffix == ".md" and fragment not in anchors(where):
            problems.append(f"{name}: `{target}`: {where.name} has no heading with the anchor #{fragment}")
    return problems


def test_the_documents_are_found():
    names = {str(p.relative_to(ROOT)) for p in documents()}
    assert {"README.md", "docs/README.md", "slides/README.md", "slides/00_course.md"} <= names


def test_every_relative_link_and_image_resolves():
    problems = [problem for document in documents() for problem in broken_links(document)]
    assert not problems, "\n".join(problems)


def test_a_broken_link_image_or_anchor_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading-with-code) [ok](there.md#twice-1) "
                    "[web](https://example.com/nowhere) [self](#top)\n\n# Top\n\n"
                    "[gone](missing.md) ![img](pics/none.svg) [anchor](there.md#nothing) "
                    "[out](../../etc/passwd)\n\n```\n[in code](not-checked.md)\n```\n\n"
                    '<img src="also-missing.png">\n')
    problems = broken_links(page)
    assert [re.search(r"`(.*?)`", p).group(1) for p in problems] == [
        "missing.md", "pics/none.svg", "there.md#nothing", "../../etc/passwd", "also-missing.png"]
