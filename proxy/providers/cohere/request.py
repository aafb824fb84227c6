"""Unified (OpenAI Chat Completions) requests as Cohere v2 chat requests (MAPPING §9).

Cohere's API rejects any field it does not know (422), so the body is built field by field and
nothing of the client's passes through unread. Decisions:

- Sampling: ``top_p`` -> ``p`` and ``top_k`` -> ``k`` within Cohere's ranges (``top_p: 1`` is
  a no-op and dropped; ``p`` must be 0.01-0.99), ``temperature`` above 1 is a 400 naming it (as
  for Claude: quietly sampling at 1 would change the output asked for), ``stop`` ->
  ``stop_sequences`` (at most 5). Penalties of 0 are dropped (Cohere refuses both together);
  otherwise each must be 0-1 and only one may be set.
- ``tool_choice``: ``required``/``none`` -> ``REQUIRED``/``NONE``; a named tool sends only that
  tool with ``REQUIRED``; ``allowed_tools`` sends only those. A per-tool ``strict: true``
  becomes Cohere's request-wide ``strict_tools``. Tool names Cohere cannot take (only
  letters, digits and ``_``, no leading digit) are a 400 naming the tool: renaming them would
  need a reverse map on every response.
- An assistant turn's text next to its ``tool_calls`` goes back as ``tool_plan``: that is
  where Cohere's own plan came from (responses surface the plan as that text).
- ``max_tokens`` is sent only when the client gave one (Cohere defaults to the model's max).
- What has no Cohere field is a 400 naming it, unless ``drop_unsupported_params`` drops it;
  neutral values (``n: 1``, ``logprobs: false``, ...) and identifiers (``user``) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from proxy.errors import invalid_request
from proxy.providers import params
from proxy.providers.params import never

JSON = dict[str, Any]
MAX_STOP_SEQUENCES = 5
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# Parameters without a Cohere equivalent -> "is this value a no-op?" (null always is).
_UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    **params.NEUTRAL,
    "n": lambda v: v == 1,
    "parallel_tool_calls": lambda v: v is True,
    "reasoning_effort": lambda v: v == "none",
    "service_tier": lambda v: v in ("auto", "default"),
    "functions": never,
    "function_call": never,
}
# Translated here, or dropped knowingly (stream_options: usage always comes; user ids: Cohere
# has no field, and dropping an identifier changes no output).
_HANDLED = frozenset(
    {"model", "messages", "stream", "stream_options", "user", "safety_identifier"}
    | {"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "seed"}
    | {"frequency_penalty", "presence_penalty", "tools", "tool_choice", "response_format"}
)


def to_cohere(body: JSON, *, upstream_model: str, drop_unsupported: bool) -> tuple[JSON, list[str]]:
    """A unified request as a Cohere v2 chat body, plus the names of parameters dropped."""
    dropped = _unsupported(body, drop_unsupported)
    out: JSON = {"model": upstream_model, "messages": _messages(body.get("messages"))}
    out.update(_tools(body))
    out.update(_sampling(body))
    response_format = _response_format(body.get("response_format"))
    if response_format is not None:
        out["response_format"] = response_format
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    return out, dropped


def _unsupported(body: JSON, drop: bool) -> list[str]:
    return params.unsupported(body, _HANDLED, _UNSUPPORTED, drop=drop, vendor="a Cohere")


# -- sampling -------------------------------------------------------------------------------


def _number(body: JSON, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_request(f"'{name}' must be a number.", name)
    return value


def _in_range(name: str, value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise invalid_request(
            f"'{name}' must be between {low} and {high} for a Cohere model; got {value}.", name
        )
    return value


def _sampling(body: JSON) -> JSON:
    out: JSON = {}
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise invalid_request(f"'{name}' must be a positive integer.", name)
            out["max_tokens"] = value
            break
    temperature = _number(body, "temperature")
    if temperature is not None:
        out["temperature"] = _in_range("temperature", temperature, 0, 1)
    top_p = _number(body, "top_p")
    if top_p is not None and top_p != 1:
        out["p"] = _in_range("top_p", top_p, 0.01, 0.99)
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise invalid_request("'top_k' must be an integer.", "top_k")
        out["k"] = int(_in_range("top_k", top_k, 0, 500))
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise invalid_request("'seed' must be a non-negative integer.", "seed")
        out["seed"] = seed
    out.update(_penalties(body))
    stops = _stops(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    return out


def _penalties(body: JSON) -> JSON:
    out: JSON = {}
    for name in ("frequency_penalty", "presence_penalty"):
        value = _number(body, name)
        if value:  # 0 is OpenAI's default and a no-op
            out[name] = _in_range(name, value, 0, 1)
    if len(out) == 2:
        raise invalid_request(
            "A Cohere model takes 'frequency_penalty' or 'presence_penalty', not both.",
            "presence_penalty",
        )
    return out


def _stops(stop: Any) -> list[str]:
    if stop is None or isinstance(stop, str):
        stops = [stop] if stop else []
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = [s for s in stop if s]
    else:
        raise invalid_request("'stop' must be a string or an array of strings.", "stop")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid_request(
            f"A Cohere model takes at most {MAX_STOP_SEQUENCES} stop sequences.", "stop"
        )
    return stops


def _response_format(value: Any) -> JSON | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid_request(
                "'response_format.json_schema.schema' must be an object.", "response_format"
            )
        return {"type": "json_object", "json_schema": schema}
    raise invalid_request(f"Unsupported 'response_format' type {kind!r}.", "response_format")


# -- tools ----------------------------------------------------------------------------------


def _tools(body: JSON) -> JSON:
    """``tools``, ``tool_choice`` and ``strict_tools``; {} without tools."""
    raw = body.get("tools")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise invalid_request("'tools' must be an array.", "tools")
    tools = [_tool(tool, i) for i, tool in enumerate(raw)]
    if not tools:
        return {}
    choice, allowed = _choice(body.get("tool_choice"))
    if allowed is not None:
        tools = [tool for tool in tools if tool["function"]["name"] in allowed]
        if not tools:
            raise invalid_request("'tool_choice' names no tool in 'tools'.", "tool_choice")
    out: JSON = {"tools": tools}
    if choice is not None:
        out["tool_choice"] = choice
    if any(_strict(tool) for tool in raw):
        out["strict_tools"] = True
    return out


def _strict(tool: Any) -> bool:
    return isinstance(tool, dict) and (tool.get("function") or {}).get("strict") is True


def _tool(tool: Any, i: int) -> JSON:
    where = f"tools[{i}]"
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise invalid_request(
            f"Tool type {kind!r} at '{where}' has no Cohere equivalent; only function tools "
            "are supported.",
            f"{where}.type",
        )
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise invalid_request(f"'{where}.function.name' is required.", f"{where}.function.name")
    name = check_tool_name(fn["name"], f"{where}.function.name")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise invalid_request(
            f"'{where}.function.parameters' must be an object.", f"{where}.function.parameters"
        )
    out: JSON = {"name": name}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    out["parameters"] = params or {"type": "object", "properties": {}}
    return {"type": "function", "function": out}


def check_tool_name(name: str, where: str) -> str:
    if not TOOL_NAME.fullmatch(name):
        raise invalid_request(
            f"Tool name {name!r} at '{where}' is not valid for a Cohere model: use letters, "
            "digits and underscores, not starting with a digit.",
            where,
        )
    return name


def _choice(raw: Any) -> tuple[str | None, set[str] | None]:
    """(Cohere tool_choice or None for the default, the tool names allowed or None for all)."""
    if raw is None or raw == "auto":
        return None, None
    if raw in ("required", "none"):
        return str(raw).upper(), None
    if isinstance(raw, dict) and raw.get("type") == "function":
        name = (raw.get("function") or {}).get("name")
        if isinstance(name, str):
            return "REQUIRED", {name}
    if isinstance(raw, dict) and raw.get("type") == "allowed_tools":
        spec = raw.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in spec.get("tools") or ()}
        mode = spec.get("mode")
        if mode in ("auto", "required"):
            return ("REQUIRED" if mode == "required" else None), {n for n in names if n}
    raise invalid_request(f"Unsupported 'tool_choice' value: {raw!r}.", "tool_choice")


# -- messages -------------------------------------------------------------------------------


def _messages(messages: Any) -> list[JSON]:
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", "messages")
    out: list[JSON] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object.", where)
        converted = _message(message, where)
        if converted is not None:
            out.append(converted)
    if not out:
        raise invalid_request("'messages' hold no content to send.", "messages")
    return out


def _message(message: JSON, where: str) -> JSON | None:
    role, content = message.get("role"), message.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": _text(content, f"{where}.content")}
    if role == "user":
        return {"role": "user", "content": _user_content(content, f"{where}.content")}
    if role == "assistant":
        return _assistant(message, where)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid_request(f"'{where}.tool_call_id' is required.", f"{where}.tool_call_id")
        text = _text(content, f"{where}.content")
        return {"role": "tool", "tool_call_id": call_id, "content": text}
    raise invalid_request(
        f"'{where}.role' {role!r} has no Cohere equivalent (legacy function messages are not "
        "supported; use tools).",
        f"{where}.role",
    )


def _assistant(message: JSON, where: str) -> JSON | None:
    text = _text(message.get("content"), f"{where}.content")
    calls = message.get("tool_calls")
    if message.get("function_call") is not None:
        raise invalid_request(
            f"'{where}.function_call' (legacy) is not supported for a Cohere model; use "
            "tool_calls.",
            f"{where}.function_call",
        )
    if not calls:
        return {"role": "assistant", "content": text} if text else None
    if not isinstance(calls, list):
        raise invalid_request(f"'{where}.tool_calls' must be an array.", f"{where}.tool_calls")
    out: JSON = {"role": "assistant", "tool_calls": [_call(c, f"{where}.tool_calls[{j}]")
                                                      for j, c in enumerate(calls)]}  # fmt: skip
    if text:
        out["tool_plan"] = text
    return out


def _call(call: Any, where: str) -> JSON:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
        raise invalid_request(f"'{where}' needs an id and a function.", where)
    if not isinstance(fn.get("name"), str):
        raise invalid_request(f"'{where}.function.name' is required.", f"{where}.function.name")
    arguments = fn.get("arguments")
    if not isinstance(arguments, str) or not arguments.strip():
        arguments = "{}"
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": fn["name"], "arguments": arguments},
    }


def _text(content: Any, where: str) -> str:
    """A system, assistant or tool message's content as one string (Cohere's text parts would
    carry nothing more)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise invalid_request(f"'{where}' must be a string or an array.", where)
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "refusal") or not isinstance(part.get(kind), str):
            raise invalid_request(
                f"'{where}[{k}]' must be a text part for a Cohere model.", f"{where}[{k}]"
            )
        texts.append(part[kind])
    return "".join(texts)


def _user_content(content: Any, where: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request(f"'{where}' must be a string or an array.", where)
    return [_part(part, f"{where}[{k}]") for k, part in enumerate(content)]


def _part(part: Any, where: str) -> JSON:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url.startswith(("data:", "https://", "http://")):
            raise invalid_request(
                f"'{where}.image_url.url' must be an http(s) or data: URL.", f"{where}.image_url"
            )
        out: JSON = {"url": url}
        detail = image.get("detail") if isinstance(image, dict) else None
        if detail in ("auto", "low", "high"):
            out["detail"] = detail
        return {"type": "image_url", "image_url": out}
    raise invalid_request(
        f"Content part type {kind!r} at '{where}' has no Cohere equivalent (text and images only).",
        f"{where}.type",
    )
