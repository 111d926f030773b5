"""Tool calling: which tools to call for a prompt, their arguments, and the answer to their results.

With `tool_choice` "required" or a named function the answer is a tool call. With "auto"
(the default when tools are sent) it is a tool call when the last user message plainly asks
for what a tool offers: a word of the tool's name (or two of its description) in the
message. Every tool asked for is called, in parallel, unless `parallel_tool_calls` is
false. Arguments are generated from the function's parameter schema and the prompt.
"""
from __future__ import annotations

import json
import zlib

from . import answers
from .json_schema import Prompt, generate, name_words
from .tokens import message_text

# Words in tool names and descriptions that say nothing about what the tool offers.
VAGUE = answers.STOP_WORDS | frozenset("""get set fetch find look lookup search list create make run call use tool
    function returns return given current specific data info information value values result results based
    provided user input using""".split())


def function_words(text: str) -> set[str]:
    return {w[:5] for w in answers.words(text) if len(w) > 2 and w not in VAGUE}


def score(function: dict, asked: set[str]) -> int:
    """How plainly the message asks for this function: 2 per word of its name, 1 per description word."""
    name = {w[:5] for w in name_words(function.get("name", "")) if len(w) > 2 and w not in VAGUE}
    described = function_words(function.get("description") or "") - name
    return 2 * len(name & asked) + len(described & asked)


def last_user_text(messages: list) -> str:
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def answers_tool_results(messages: list) -> bool:
    return bool(messages) and messages[-1].get("role") == "tool"


def chosen(functions: list[dict], choice, parallel: bool, messages: list) -> list[dict]:
    """The functions this answer calls; empty for a text answer."""
    if not functions or choice == "none":
        return []
    if isinstance(choice, dict):
        wanted = choice["function"]["name"]
        return [f for f in functions if f["name"] == wanted][:1]
    asked = {w[:5] for w in answers.words(last_user_text(messages))}
    scores = [score(f, asked) for f in functions]
    if choice == "required":
        plain = [f for f, s in zip(functions, scores) if s >= 2]
        if not plain:  # nothing asked for plainly: the best match, else the first tool
            plain = [max(functions, key=lambda f: (scores[functions.index(f)], -functions.index(f)))]
    else:  # auto: a text answer after tool results, or when nothing is asked for plainly
        if answers_tool_results(messages):
            return []
        plain = [f for f, s in zip(functions, scores) if s >= 2]
    if plain and not parallel:
        plain = [max(plain, key=lambda f: (scores[functions.index(f)], -functions.index(f)))]
    return plain


def calls(functions: list[dict], messages: list, salt: str = "") -> list[tuple[str, str, str]]:
    """(call id, function name, JSON arguments) for each chosen function."""
    text = last_user_text(messages)
    prompt = Prompt(text)  # shared, so numbers in the prompt are handed out across the calls in order
    out = []
    for i, function in enumerate(functions):
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = json.dumps(generate(schema, prompt), separators=(",", ":"))
        digest = zlib.crc32(f"{salt}|{text}|{function['name']}|{i}".encode())
        out.append((f"call_sim{digest:08x}{i:02d}", function["name"], arguments))
    return out


def answer_from_results(messages: list) -> str:
    """A text answer that uses what the tools returned (the tool messages after the last call)."""
    names = {}
    for m in messages:
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict):
                names[call.get("id")] = (call.get("function") or {}).get("name", "the tool")
    results = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        results.append((names.get(m.get("tool_call_id"), "the tool"), message_text(m)))
    parts = [f"{name} returned {describe(content)}" for name, content in reversed(results)]
    return "Here is what I found: " + "; ".join(parts) + "."


def describe(content: str) -> str:
    """A tool result in words: the fields of a JSON object, else the text itself (shortened)."""
    try:
        value = json.loads(content)
    except ValueError:
        value = content
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in list(value.items())[:8]) or "nothing"
    text = str(value).strip()
    return text if len(text) <= 300 else text[:297] + "..."
