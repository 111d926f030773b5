"""POST /v1/responses, the Responses API: the same answers as chat completions, in its shapes.

`input` (a string or a list of messages, function calls and their outputs), `instructions`,
`max_output_tokens` (status "incomplete" when cut), `text.format` (json_object, json_schema),
function `tools` with `tool_choice`, and `stream` (the typed events the SDK reads) work as the
real API does. What a simulator cannot do (stored responses, built-in tools, background
runs) is refused with a 400 that says so.
"""
from __future__ import annotations

import json
import time
import zlib

from . import completion, tokens, validation
from .errors import bad, invalid_type
from .models import Model
from .reply import Reply

NOT_SIMULATED = {
    "background": "background runs", "conversation": "stored conversations", "prompt": "stored prompts",
    "context_management": "context management", "image": "image input",
}


def to_messages(body: dict) -> list[dict]:
    """The request as chat messages: instructions first, then every input item."""
    out = []
    instructions = validation.kind_of(body, "instructions", (str,), "a string")
    if instructions:
        out.append({"role": "developer", "content": instructions})
    items = body.get("input")
    if items is None:
        raise bad("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(items, str):
        return out + [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise invalid_type("input", items, "a string or an array")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid_type(f"input[{i}]", item, "an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad(f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', "
                          "and 'user'.", param=f"input[{i}].role", code="invalid_value")
            out.append({"role": role, "content": item.get("content") or ""})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
            if out and out[-1]["role"] == "assistant" and out[-1].get("tool_calls"):
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else json.dumps(output)})
        else:
            raise validation.not_simulated(f"input[{i}].type", f"'{kind}' items")
    if not any(m["role"] == "user" for m in out) and not any(m["role"] == "tool" for m in out):
        raise bad("Invalid 'input': it must contain a user message.", param="input")
    return out


def as_chat(body: dict, max_output: int) -> dict:
    """The request translated to a chat completions body, checked on the way."""
    validation.unknown_params(body, validation.RESPONSES_PARAMS)
    for param, what in NOT_SIMULATED.items():
        if body.get(param) not in (None, False):
            raise validation.not_simulated(param, what)
    if body.get("previous_response_id") is not None:
        raise bad(f"Previous response with id '{body['previous_response_id']}' not found.",
                  param="previous_response_id", code="previous_response_not_found")
    limit = validation.integer(body, "max_output_tokens", 16)
    if limit is not None and limit > max_output:
        raise bad(f"max_output_tokens is too large: {limit}. This model supports at most {max_output} output "
                  f"tokens, whereas you provided {limit}.", param="max_output_tokens", code="invalid_value")
    chat_body = {"messages": to_messages(body), "max_completion_tokens": limit}
    for key in ("temperature", "top_p", "stream", "parallel_tool_calls", "metadata", "user"):
        if body.get(key) is not None:
            chat_body[key] = body[key]
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise bad(f"Invalid value: '{(fmt or {}).get('type')}'. Supported values are: 'text', 'json_object', "
                      "and 'json_schema'.", param="text.format.type", code="invalid_value")
        if fmt["type"] == "json_schema":
            validation.json_schema_format(fmt, "text.format")
            chat_body["response_format"] = {"type": "json_schema", "json_schema": fmt}
        elif fmt["type"] == "json_object":
            chat_body["response_format"] = {"type": "json_object"}
    if body.get("tools"):
        chat_body["tools"] = function_tools(body["tools"])
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            choice = {"type": "function", "function": {"name": choice.get("name")}}
        if choice is not None:
            chat_body["tool_choice"] = choice
    chat_body = {k: v for k, v in chat_body.items() if v is not None}
    validation.chat({**chat_body, "model": "-"}, max_output)
    return chat_body


def function_tools(value) -> list[dict]:
    if not isinstance(value, list):
        raise invalid_type("tools", value, "an array")
    out = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise validation.not_simulated(f"tools[{i}].type", f"built-in tool '{(tool or {}).get('type')}'")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def plan(body: dict, model: Model, raw: bytes) -> Reply:
    chat_body = as_chat(body, model.max_output)
    digest = f"{zlib.crc32(raw):08x}"
    choice = completion.choose(chat_body, chat_body["messages"], [t["function"] for t in chat_body.get("tools", ())],
                               model, 0, chat_body.get("max_completion_tokens"), [])
    prompt = tokens.prompt_tokens(chat_body["messages"], chat_body.get("tools"))
    used = len(choice.pieces)
    limit = chat_body.get("max_completion_tokens")
    reply = Reply(model, prompt, used, rate_cost=prompt + (limit or used), units=used)
    items = output_items(choice, digest)
    final = response(body, model.name, digest, items, choice, prompt, used)
    if body.get("stream"):
        reply.events = lambda: stream(final, items, choice)
    else:
        reply.body = lambda: final
    return reply


def output_items(choice: completion.Choice, digest: str) -> list[dict]:
    if choice.calls:
        return [{"id": f"fc_sim{digest}{k:02d}", "type": "function_call", "status": "completed",
                 "arguments": arguments, "call_id": call_id, "name": name}
                for k, (call_id, name, arguments) in enumerate(choice.calls)]
    return [{"id": f"msg_sim{digest}", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": choice.content, "annotations": [], "logprobs": []}]}]


def response(body: dict, model: str, digest: str, items: list, choice, prompt: int, used: int) -> dict:
    cut = choice.finish == "length"
    fmt = (body.get("text") or {}).get("format") or {"type": "text"}
    return {
        "id": f"resp_sim{digest}", "object": "response", "created_at": int(time.time()),
        "status": "incomplete" if cut else "completed", "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None, "model": model, "output": items,
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": {"format": fmt, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0), "truncation": "disabled", "user": body.get("user"),
        "metadata": body.get("metadata") or {},
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": used, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + used},
    }


def stream(final: dict, items: list[dict], choice) -> list[tuple[bytes, bool]]:
    """The typed events of a streamed response, in the order the real API sends them."""
    events: list[tuple[bytes, bool]] = []

    def send(kind: str, token: bool = False, **data) -> None:
        data = {"type": kind, "sequence_number": len(events), **data}
        events.append((f"event: {kind}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode()
                       + b"\n\n", token))

    started = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    send("response.created", response=started)
    send("response.in_progress", response=started)
    for index, item in enumerate(items):
        if item["type"] == "function_call":
            send("response.output_item.added", output_index=index,
                 item={**item, "arguments": "", "status": "in_progress"})
            args = item["arguments"]
            for i in range(0, len(args), completion.ARGUMENT_PIECE):
                send("response.function_call_arguments.delta", True, item_id=item["id"], output_index=index,
                     delta=args[i:i + completion.ARGUMENT_PIECE])
            send("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                 arguments=args, name=item["name"])
        else:
            part = item["content"][0]
            send("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})
            send("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                 part={**part, "text": ""})
            for piece in choice.pieces:
                send("response.output_text.delta", True, item_id=item["id"], output_index=index, content_index=0,
                     delta=piece, logprobs=[])
            send("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                 text=part["text"], logprobs=[])
            send("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part)
        send("response.output_item.done", output_index=index, item=item)
    send("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
    return events
