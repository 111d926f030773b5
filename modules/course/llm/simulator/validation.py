"""Checks on request bodies, answered as the real API answers them: 400 naming the parameter.

A stand-in that quietly accepts what the real API refuses teaches the wrong lesson, so a
value the real API would refuse is refused here too, with the same error shape.
"""
from __future__ import annotations

import math
import re

from .errors import ApiError, bad, invalid_type

CHAT_PARAMS = frozenset("""
    messages model audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens
    max_tokens metadata modalities moderation n parallel_tool_calls prediction presence_penalty prompt_cache_key
    prompt_cache_options prompt_cache_retention reasoning_effort response_format safety_identifier seed
    service_tier stop store stream stream_options temperature tool_choice tools top_logprobs top_p user
    verbosity web_search_options""".split())
EMBEDDING_PARAMS = frozenset("input model dimensions encoding_format user".split())
RESPONSES_PARAMS = frozenset("""
    access_programs background background_options context_management conversation image include input
    instructions max_output_tokens max_tool_calls metadata model moderation parallel_tool_calls
    previous_response_id prompt prompt_cache_key prompt_cache_options prompt_cache_retention reasoning
    safety_identifier service_tier store stream stream_options temperature text tool_choice tools
    top_logprobs top_p truncation user""".split())
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_INPUT_TOKENS = 8192
MAX_EMBEDDING_REQUEST_TOKENS = 300_000


def supported(values: tuple) -> str:
    quoted = [f"'{v}'" for v in values]
    return "Supported values are: " + ", ".join(quoted[:-1]) + ", and " + quoted[-1] + "."


def unknown_params(body: dict, allowed: frozenset) -> None:
    for key in body:
        if key not in allowed:
            raise bad(f"Unrecognized request argument supplied: {key}", param=key, code="unknown_parameter")


def number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_type(name, value, "a decimal")
    if not math.isfinite(value):
        raise bad(f"Invalid '{name}': expected a finite number, but got {value} instead.", param=name,
                  code="invalid_value")
    if value > high:
        raise bad(f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
                  f"but got {value:g} instead.", param=name, code="decimal_above_max_value")
    if value < low:
        raise bad(f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
                  f"but got {value:g} instead.", param=name, code="decimal_below_min_value")
    return value


def integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, value, "an integer")
    if high is not None and value > high:
        raise bad(f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
                  f"but got {value} instead.", param=name, code="integer_above_max_value")
    if value < low:
        raise bad(f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                  f"but got {value} instead.", param=name, code="integer_below_min_value")
    return value


def boolean(body: dict, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid_type(name, value, "a boolean")
    return value


def kind_of(body: dict, name: str, types: tuple, expected: str):
    value = body.get(name)
    if value is not None and not isinstance(value, types):
        raise invalid_type(name, value, expected)
    return value


def required_model(body: dict) -> str:
    name = body.get("model")
    if name is None:
        raise bad("you must provide a model parameter", param="model")
    if not isinstance(name, str) or not name:
        raise invalid_type("model", name, "a string")
    return name


def not_simulated(param: str, what: str) -> ApiError:
    return bad(f"'{param}' ({what}) is not supported by the course's simulated LLM; "
               "use a real model for it (docs/simulator.md lists what is simulated).", param=param,
               code="unsupported_parameter")


# --- chat completions ------------------------------------------------------------------------


def chat(body: dict, max_output: int) -> None:
    """Every check the real API makes that the simulator can make, in the same words.

    Only the parameters a request carries are checked (the common request carries few).
    """
    messages(body.get("messages"))
    for key in body:
        check = CHAT_CHECKS.get(key)
        if check is None:
            if key not in CHAT_PARAMS:
                raise bad(f"Unrecognized request argument supplied: {key}", param=key, code="unknown_parameter")
            continue
        check(body, max_output)
    if "tools" not in body and ("tool_choice" in body or "parallel_tool_calls" in body):
        tools(None, body.get("tool_choice"), body.get("parallel_tool_calls"))


def max_tokens(name: str):
    def check(body: dict, max_output: int) -> None:
        limit = integer(body, name, 1)
        if limit is not None and limit > max_output:
            raise bad(f"{name} is too large: {limit}. This model supports at most {max_output} completion "
                      f"tokens, whereas you provided {limit}.", param=name, code="invalid_value")
    return check


def refused(param: str, what: str):
    def check(body: dict, max_output: int) -> None:
        if body.get(param) is not None:
            raise not_simulated(param, what)
    return check


def check_modalities(body: dict, max_output: int) -> None:
    modalities = kind_of(body, "modalities", (list,), "an array")
    if modalities and any(m != "text" for m in modalities):
        raise not_simulated("modalities", "audio output")


def messages(value) -> None:
    if value is None:
        raise bad("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(value, list):
        raise invalid_type("messages", value, "an array")
    if not value:
        raise bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                  "empty array instead.", param="messages", code="empty_array")
    calls: set | None = None  # the tool_call ids of the assistant message the tool messages answer
    waiting: set = set()  # those not answered yet
    asked_at = -1
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid_type(where, m, "an object")
        role = m.get("role")
        if role is None:
            raise bad(f"Missing required parameter: '{where}.role'.", param=f"{where}.role",
                      code="missing_required_parameter")
        if role not in ROLES:
            raise bad(f"Invalid value: '{role}'. {supported(ROLES)}", param=f"{where}.role", code="invalid_value")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise invalid_type(f"{where}.content", content, "a string or an array")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                raise bad(f"Missing required parameter: '{where}.tool_call_id'.", param=f"{where}.tool_call_id",
                          code="missing_required_parameter")
            if calls is None:
                raise bad("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                          "message with 'tool_calls'.", param=f"messages.[{i}].role")
            if call_id not in calls:
                raise bad(f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of "
                          "previous message.", param=f"messages.[{i}].tool_call_id")
            waiting.discard(call_id)
            continue
        if waiting:
            raise unanswered_calls(asked_at, waiting)
        calls = None
        if role == "assistant":
            asked = m.get("tool_calls")
            if asked is not None and not isinstance(asked, list):
                raise invalid_type(f"{where}.tool_calls", asked, "an array")
            if asked:
                calls = {c.get("id") for c in asked if isinstance(c, dict)}
                waiting, asked_at = set(calls), i
            elif content is None:
                raise bad(f"Invalid value for '{where}.content': expected a string, got null.",
                          param=f"{where}.content", code="invalid_value")
        elif content is None:
            raise bad(f"Missing required parameter: '{where}.content'.", param=f"{where}.content",
                      code="missing_required_parameter")
    if waiting:
        raise unanswered_calls(asked_at, waiting)


def unanswered_calls(index: int, waiting: dict) -> ApiError:
    return bad("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
               "'tool_call_id'. The following tool_call_ids did not have response messages: "
               + ", ".join(sorted(str(k) for k in waiting)), param=f"messages.[{index}].role")


def logprobs(body: dict) -> None:
    wanted = boolean(body, "logprobs")
    top = integer(body, "top_logprobs", 0, 20)
    if top is not None and not wanted:
        raise bad("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is "
                  "specified.", param="top_logprobs", code="invalid_value")


def stop(value) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid_type("stop", value, "a string or an array of strings")
    if len(value) > 4:
        raise bad(f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                  f"with length {len(value)} instead.", param="stop", code="array_above_max_length")


def streaming(body: dict) -> None:
    stream = boolean(body, "stream")
    options = kind_of(body, "stream_options", (dict,), "an object")
    if options is not None and not stream:
        raise bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                  param="stream_options", code="invalid_value")


def tools(value, choice, parallel) -> None:
    if value is None:
        if choice is not None:
            raise bad("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                      "specified.", param="tool_choice")
        if parallel is not None:
            raise bad("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when "
                      "'tools' are specified.", param="parallel_tool_calls")
        return
    if not isinstance(value, list):
        raise invalid_type("tools", value, "an array")
    if len(value) > 128:
        raise bad(f"Invalid 'tools': array too long. Expected an array with maximum length 128, but got an "
                  f"array with length {len(value)} instead.", param="tools", code="array_above_max_length")
    names = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", tool, "an object")
        if tool.get("type") != "function":
            if tool.get("type") == "custom":
                raise not_simulated(f"tools[{i}].type", "custom tools")
            raise bad(f"Invalid value: '{tool.get('type')}'. Supported values are: 'function' and 'custom'.",
                      param=f"tools[{i}].type", code="invalid_value")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise bad(f"Missing required parameter: 'tools[{i}].function'.", param=f"tools[{i}].function",
                      code="missing_required_parameter")
        function_definition(function, f"tools[{i}].function")
        names.append(function["name"])
    if choice is None or choice in ("none", "auto", "required"):
        return
    if isinstance(choice, str):
        raise bad(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                  param="tool_choice", code="invalid_value")
    if not isinstance(choice, dict) or choice.get("type") != "function":
        raise bad("Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object "
                  "{'type': 'function', 'function': {'name': ...}}.", param="tool_choice", code="invalid_value")
    name = (choice.get("function") or {}).get("name")
    if name not in names:
        raise bad(f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                  param="tool_choice", code="invalid_value")


def function_definition(function: dict, where: str, kind: str = "function") -> None:
    from .json_schema import check_strict  # here, so this module stays light to import

    name = function.get("name")
    if not isinstance(name, str):
        raise bad(f"Missing required parameter: '{where}.name'.", param=f"{where}.name",
                  code="missing_required_parameter")
    if not FUNCTION_NAME.match(name):
        raise bad(f"Invalid '{where}.name': string does not match pattern. Expected a string that matches the "
                  f"pattern '^[a-zA-Z0-9_-]+$'.", param=f"{where}.name", code="invalid_value")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid_type(f"{where}.parameters", parameters, "an object")
    if function.get("strict") and parameters is not None:
        check_strict(parameters, f"Invalid schema for {kind} '{name}'")


def response_format(value, messages_: list) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid_type("response_format", value, "an object")
    kind = value.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise bad(f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                  param="response_format.type", code="invalid_value")
    if kind == "json_object":
        from .tokens import message_text

        if not any("json" in message_text(m).lower() for m in messages_):
            raise bad("'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                      "'json_object'.", param="messages")
    if kind == "json_schema":
        json_schema_format(value.get("json_schema"), "response_format.json_schema")


def json_schema_format(spec, where: str) -> None:
    """A json_schema response format: {name, schema, strict} (chat nests it, Responses does not)."""
    from .json_schema import check_strict

    if not isinstance(spec, dict):
        raise bad(f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
    name = spec.get("name")
    if not isinstance(name, str):
        raise bad(f"Missing required parameter: '{where}.name'.", param=f"{where}.name",
                  code="missing_required_parameter")
    if not FUNCTION_NAME.match(name):
        raise bad(f"Invalid '{where}.name': string does not match pattern. Expected a string that matches the "
                  f"pattern '^[a-zA-Z0-9_-]+$'.", param=f"{where}.name", code="invalid_value")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid_type(f"{where}.schema", schema, "an object")
    if spec.get("strict"):
        check_strict(schema or {}, f"Invalid schema for response_format '{name}'", root_object=True)


# --- embeddings --------------------------------------------------------------------------------


def embedding_inputs(body: dict) -> list:
    """The inputs as a list of strings or token arrays, checked as the real API checks them."""
    unknown_params(body, EMBEDDING_PARAMS)
    texts = body.get("input")
    if texts is None:
        raise bad("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(texts, str) or (isinstance(texts, list) and texts and all(isinstance(t, int) for t in texts)):
        texts = [texts]  # one string, or one token array
    if not isinstance(texts, list) or not texts:
        raise bad("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/"
                  "api-reference.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise bad(f"Invalid 'input': array too long. Expected an array with maximum length "
                  f"{MAX_EMBEDDING_INPUTS}, but got an array with length {len(texts)} instead.",
                  param="input", code="array_above_max_length")
    for t in texts:
        ok = (isinstance(t, str) and t) or (isinstance(t, list) and t and all(
            isinstance(x, int) and not isinstance(x, bool) for x in t))
        if not ok:
            raise bad("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/"
                      "api-reference.", param="input")
    kind_of(body, "user", (str,), "a string")
    return texts


CHAT_CHECKS = {
    "temperature": lambda b, _: number(b, "temperature", 0, 2),
    "top_p": lambda b, _: number(b, "top_p", 0, 1),
    "presence_penalty": lambda b, _: number(b, "presence_penalty", -2, 2),
    "frequency_penalty": lambda b, _: number(b, "frequency_penalty", -2, 2),
    "n": lambda b, _: integer(b, "n", 1, 128),
    "seed": lambda b, _: integer(b, "seed", -(2**63), 2**63 - 1),
    "logit_bias": lambda b, _: kind_of(b, "logit_bias", (dict,), "an object"),
    "metadata": lambda b, _: kind_of(b, "metadata", (dict,), "an object"),
    "user": lambda b, _: kind_of(b, "user", (str,), "a string"),
    "max_tokens": max_tokens("max_tokens"),
    "max_completion_tokens": max_tokens("max_completion_tokens"),
    "logprobs": lambda b, _: logprobs(b),
    "top_logprobs": lambda b, _: logprobs(b),
    "stop": lambda b, _: stop(b.get("stop")),
    "stream": lambda b, _: streaming(b),
    "stream_options": lambda b, _: streaming(b),
    "tools": lambda b, _: tools(b.get("tools"), b.get("tool_choice"), b.get("parallel_tool_calls")),
    "response_format": lambda b, _: response_format(b.get("response_format"), b["messages"]),
    "functions": refused("functions", "the deprecated function calling; use 'tools'"),
    "function_call": refused("function_call", "the deprecated function calling; use 'tool_choice'"),
    "audio": refused("audio", "audio output"),
    "prediction": refused("prediction", "predicted outputs"),
    "web_search_options": refused("web_search_options", "web search"),
    "modalities": check_modalities,
}
