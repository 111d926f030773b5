"""POST /v1/chat/completions: a checked request turned into choices, usage and (maybe) a stream.

Honoured as the real API does: `n` choices, `tools` / `tool_choice` / `parallel_tool_calls`,
`response_format` (json_object, json_schema), `stop`, `max_tokens` / `max_completion_tokens`
(finish_reason "length" when cut), `logprobs` / `top_logprobs`, `seed`, `stream` with
`stream_options.include_usage`.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from . import answers, chat, logprobs, tools, tokens
from .json_schema import generate
from .models import Model
from .reply import Reply

ARGUMENT_PIECE = 12  # characters of tool-call arguments per stream chunk, about what OpenAI sends


@dataclass
class Choice:
    index: int
    content: str | None
    calls: list  # (id, name, arguments) when the answer is tool calls
    finish: str
    pieces: list[str]  # the tokens of the content, or of the arguments

    def as_json(self, top: int | None) -> dict:
        return {
            "index": self.index,
            "message": chat.message(self.content, self.calls),
            "logprobs": None if top is None or self.calls else
            {"content": logprobs.for_tokens(self.pieces, top), "refusal": None},
            "finish_reason": self.finish,
        }


def plan(body: dict, model: Model, rid: str) -> Reply:
    messages = body["messages"]
    functions = [t["function"] for t in body.get("tools") or ()]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else stops or []
    choices = [choose(body, messages, functions, model, i, limit, stops) for i in range(body.get("n") or 1)]
    prompt = tokens.prompt_tokens(messages, body.get("tools"))
    completion = sum(len(c.pieces) for c in choices)
    usage = chat.usage(prompt, completion)
    top = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
    reply = Reply(model, prompt, completion, rate_cost=prompt + (limit or completion), units=completion)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        reply.events = lambda: stream(rid, model.name, choices, usage, top, include_usage)
    else:
        reply.body = lambda: chat.completion(rid, model.name, [c.as_json(top) for c in choices], usage)
    return reply


def choose(body: dict, messages: list, functions: list, model: Model, index: int, limit: int | None,
           stops: list[str]) -> Choice:
    parallel = body.get("parallel_tool_calls") is not False
    called = tools.chosen(functions, body.get("tool_choice", "auto"), parallel, messages)
    if called:
        calls = tools.calls(called, messages, salt=str(index))
        pieces = [p for _, name, arguments in calls for p in tokens.pieces(name + " " + arguments.replace(",", ", "))]
        return Choice(index, None, calls, "tool_calls", pieces)
    text = content(body, messages, model, index)
    finish = "stop"
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    pieces = tokens.pieces(text)
    if limit and len(pieces) > limit:
        pieces, finish = pieces[:limit], "length"
        text = "".join(pieces)
    return Choice(index, text, [], finish, pieces)


def content(body: dict, messages: list, model: Model, index: int) -> str:
    """The text of one choice: JSON when a response format asks for it, else the course's answer."""
    seed = body.get("seed")
    variant = index + (zlib.crc32(str(seed).encode()) if seed is not None else 0)
    fmt = body.get("response_format") or {}
    results = tools.answers_tool_results(messages)
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        text = tools.last_user_text(messages)
        if results:
            text += " " + " ".join(tokens.message_text(m) for m in messages if m.get("role") == "tool")
        return json.dumps(generate(spec.get("schema") or {"type": "object"}, text))
    if fmt.get("type") == "json_object":
        if results:
            return json.dumps({"answer": tools.answer_from_results(messages)})
        return json.dumps(answers.json_object(messages, model.detail))
    if results:
        return tools.answer_from_results(messages)
    return answers.answer(messages, model.detail, variant)


def stream(rid: str, model: str, choices: list[Choice], usage: dict, top: int | None,
           include_usage: bool) -> list[tuple[bytes, bool]]:
    """The chunks OpenAI sends: a role chunk, one chunk per token (or argument piece), a finish chunk."""
    out = []
    for c in choices:
        opening = {"role": "assistant", "content": None if c.calls else "", "refusal": None}
        out.append((chat.chunk(rid, model, c.index, opening, with_usage=include_usage), False))
        if c.calls:
            for k, (call_id, name, arguments) in enumerate(c.calls):
                first = {"tool_calls": [{"index": k, "id": call_id, "type": "function",
                                         "function": {"name": name, "arguments": ""}}]}
                out.append((chat.chunk(rid, model, c.index, first, with_usage=include_usage), True))
                for i in range(0, len(arguments), ARGUMENT_PIECE):
                    delta = {"tool_calls": [{"index": k, "function": {"arguments": arguments[i:i + ARGUMENT_PIECE]}}]}
                    out.append((chat.chunk(rid, model, c.index, delta, with_usage=include_usage), True))
        else:
            for i, piece in enumerate(c.pieces):
                lp = None if top is None else {"content": logprobs.for_tokens([piece], top, i), "refusal": None}
                out.append((chat.chunk(rid, model, c.index, {"content": piece}, logprobs=lp,
                                       with_usage=include_usage), True))
        out.append((chat.chunk(rid, model, c.index, {}, c.finish, with_usage=include_usage), False))
    if include_usage:
        out.append((chat.usage_chunk(rid, model, usage), False))
    out.append((chat.DONE, False))
    return out
