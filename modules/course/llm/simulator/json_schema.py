"""JSON Schema: OpenAI's strict-mode checks, and values made to match a schema.

`generate(schema, prompt)` builds a value that validates against the schema (types,
required, enums, nested objects, arrays, $ref, anyOf, formats, min/max), filled from
the prompt where it can: numbers in the prompt go to number fields in order, proper
nouns to places and names, the course's answers to fields named like them
(sentiment, summary, keywords, category). Same schema and prompt, same value.
"""
from __future__ import annotations

import re
import uuid
import zlib

from . import answers
from .errors import bad

MAX_DEPTH = 6
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
PROPER = re.compile(r"\b[A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+)*")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
URL = re.compile(r"https?://\S+")
NAME_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

PLACE = {"location", "city", "place", "country", "destination", "origin", "address", "region", "town", "where"}
PERSON = {"name", "title", "person", "author", "company", "user", "customer", "product"}
QUERY = {"query", "q", "search", "question", "prompt", "input", "request", "keywords_query", "term", "terms"}
PRAISE_AND_BLAME = {"excellent", "fantastic", "terrible", "awful", "solid", "best", "worst", "nothing", "says", "highly"}
RATING = {"stars", "star", "rating", "score", "grade"}
PROSE = {"answer", "explanation", "description", "reason", "reasoning", "response", "text", "message",
         "content", "details", "comment", "body", "justification", "rationale"}


# --- strict mode ---------------------------------------------------------------------------------


def check_strict(schema: dict, prefix: str, root_object: bool = False, param: str | None = None) -> None:
    """The checks OpenAI makes on a strict schema, with its messages; raises ApiError(400)."""
    param = param or ("response_format" if "response_format" in prefix else "tools")
    if root_object and schema.get("type") != "object":
        raise bad(f"{prefix}: schema must be a JSON Schema of 'type: \"object\"', got "
                  f"'type: \"{schema.get('type')}\"'.", param=param, code="invalid_json_schema")
    _check(schema, (), prefix, param)


def _check(node, context: tuple, prefix: str, param: str) -> None:
    if not isinstance(node, dict):
        return
    where = f"{prefix}: In context={context!r}, "
    if node.get("type") == "object" or "properties" in node:
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            raise bad(where + "'additionalProperties' is required to be supplied and to be false.",
                      param=param, code="invalid_json_schema")
        required = node.get("required") or []
        missing = [key for key in properties if key not in required]
        if missing:
            raise bad(where + "'required' is required to be supplied and to be an array including every key "
                      f"in properties. Missing '{missing[0]}'.", param=param, code="invalid_json_schema")
        for key, sub in properties.items():
            _check(sub, context + ("properties", key), prefix, param)
    if "items" in node:
        _check(node["items"], context + ("items",), prefix, param)
    for keyword in ("anyOf", "allOf"):
        for i, sub in enumerate(node.get(keyword) or ()):
            _check(sub, context + (keyword, str(i)), prefix, param)
    for keyword in ("$defs", "definitions"):
        for name, sub in (node.get(keyword) or {}).items():
            _check(sub, context + (keyword, name), prefix, param)


# --- values ------------------------------------------------------------------------------------


class Prompt:
    """What a generated value may take from the prompt; numbers are used up in order."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = set(answers.words(text))
        self.numbers = [float(n) for n in NUMBER.findall(text)]
        self.next_number = 0
        stop = answers.STOP_WORDS | {"what", "how", "tell", "find", "get", "show", "call", "use", "can", "hi", "hello"}
        self.proper = [p for p in PROPER.findall(text) if p.split()[0].lower().split("'")[0] not in stop]
        self.salient = answers.salient(text, 8)

    def take_number(self) -> float | None:
        if self.next_number < len(self.numbers):
            self.next_number += 1
            return self.numbers[self.next_number - 1]
        return None

    def phrase(self, size: int = 3) -> str:
        return " ".join(self.salient[:size]) or "example"


def name_words(name: str) -> set[str]:
    return {w.lower() for w in NAME_PARTS.findall(name)}


def generate(schema: dict, prompt: str | Prompt, root: dict | None = None, name: str = "", depth: int = 0):
    """A value that validates against `schema`, filled from the prompt."""
    hints = prompt if isinstance(prompt, Prompt) else Prompt(prompt)
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return hints.phrase()
    if "$ref" in schema:
        return generate(resolve(root, schema["$ref"]), hints, root, name, depth)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return pick(schema["enum"], name, hints)
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            options = [s for s in schema[keyword] if not (isinstance(s, dict) and s.get("type") == "null")]
            return generate(options[0], hints, root, name, depth) if options else None
    if isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = resolve(root, part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
            merged.update(part if isinstance(part, dict) else {})
        return generate(merged, hints, root, name, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        if depth >= MAX_DEPTH:
            return {}
        properties = schema.get("properties") or {}
        return {key: generate(sub, hints, root, key, depth + 1) for key, sub in properties.items()}
    if kind == "array":
        return array(schema, hints, root, name, depth)
    if kind in ("integer", "number"):
        return number(schema, hints, kind == "integer", name)
    if kind == "boolean":
        return bool(name_words(name) & hints.words)
    if kind == "null":
        return None
    return string(schema, hints, name)


def resolve(root: dict, ref: str) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
    return node


def pick(options: list, name: str, hints: Prompt):
    """The option the prompt points to: its sentiment, a word it mentions, else the first."""
    texts = [o for o in options if isinstance(o, str)]
    if {o.lower() for o in texts} >= {"positive", "negative"}:
        wanted = answers.sentiment(hints.text)
        return next((o for o in texts if o.lower() == wanted), options[0])
    if texts:
        best = max(texts, key=lambda o: (answers.overlap(o, hints.words), -texts.index(o)))
        if answers.overlap(best, hints.words):
            return best
    return options[0]


def array(schema: dict, hints: Prompt, root: dict, name: str, depth: int) -> list:
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", 10**6))
    if depth >= MAX_DEPTH:
        size = low
    elif isinstance(items, dict) and isinstance(items.get("enum"), list) and items["enum"]:
        mentioned = [o for o in items["enum"] if isinstance(o, str) and answers.overlap(o, hints.words)]
        chosen = mentioned or items["enum"][:1]
        chosen = (chosen + [o for o in items["enum"] if o not in chosen])[:max(low, len(chosen))]
        return chosen[:high]
    elif items.get("type", "string") == "string" and not items.get("format") and "$ref" not in items:
        words = answers.keywords(hints.text, 0).split(", ") if hints.salient else ["example"]
        words = (words + [f"{words[-1]}-{i}" for i in range(2, low + 2)])[:max(low, min(len(words), 5))]
        return words[:high]
    else:
        size = max(low, 1 if depth < MAX_DEPTH - 1 else 0)
    return [generate(items, hints, root, name, depth + 1) for _ in range(min(size, high))]


def number(schema: dict, hints: Prompt, integer: bool, name: str) -> float | int:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if schema.get("exclusiveMinimum") is not None:
        low = schema["exclusiveMinimum"] + (1 if integer else 1e-6)
    if schema.get("exclusiveMaximum") is not None:
        high = schema["exclusiveMaximum"] - (1 if integer else 1e-6)
    value = hints.take_number()
    if value is None and name_words(name) & RATING and low is not None and high is not None:
        # A rating follows the text's tone: a glowing review gets the top of the scale.
        value = {"positive": high, "negative": low}.get(answers.sentiment(hints.text), (low + high) / 2)
    if value is None:
        value = schema.get("default", low if low is not None else 1)
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    if integer:
        value = int(value)
        if low is not None and value < low:
            value += 1
    return value


def string(schema: dict, hints: Prompt, name: str) -> str:
    value = formatted(schema.get("format"), hints)
    if value is None:
        value = by_name(name_words(name), hints)
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(value) < low:
        value = value + "." * (low - len(value))
    if high is not None:
        value = value[: int(high)]
    return value


def formatted(fmt: str | None, hints: Prompt) -> str | None:
    if not fmt:
        return None
    found = {"date": DATE, "email": EMAIL, "uri": URL, "url": URL}.get(fmt)
    match = found.search(hints.text) if found else None
    if match:
        return match.group(0)
    return {
        "date": "2025-01-15", "date-time": "2025-01-15T09:00:00Z", "time": "09:00:00", "email": "user@example.com",
        "uri": "https://example.com/", "url": "https://example.com/", "hostname": "example.com",
        "ipv4": "127.0.0.1", "ipv6": "::1", "duration": "PT1H",
        "uuid": str(uuid.UUID(int=zlib.crc32(hints.text.encode()) << 64 | 0x4000_8000_0000_0000)),
    }.get(fmt)


def by_name(words: set[str], hints: Prompt) -> str:
    """A string for a field, chosen by the field's name."""
    text = hints.text
    if any(w.startswith("sentiment") for w in words):
        return answers.sentiment(text)
    if any(w.startswith(("summar", "tldr")) for w in words):
        return answers.summary(text, 0)
    if any(w.startswith(("keyword", "tag")) for w in words):
        return answers.keywords(text, 0)
    if words & {"category", "label", "topic", "class", "classification", "intent"}:
        return answers.classify("", text)
    if words & PLACE:
        return hints.proper[0] if hints.proper else hints.phrase(1).title()
    if words & {"language", "lang", "locale"}:
        return "English"
    if words & {"currency"}:
        return "USD"
    if words & {"product", "item"}:
        # The thing the text talks about: its first salient word or name that is not praise or blame.
        tone = answers.POSITIVE | answers.NEGATIVE | PRAISE_AND_BLAME
        named = [w for w in hints.salient + hints.proper if w.lower() not in tone]
        return named[0].title() if named else "Product"
    if words & PERSON:
        return hints.proper[0] if hints.proper else hints.phrase(2).title()
    if words & QUERY:
        return hints.phrase(6)
    if words & PROSE:
        return answers.generic(text, 0)
    return hints.phrase(3)
