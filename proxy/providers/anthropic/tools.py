"""Tools between OpenAI and Anthropic: definitions, tool_choice, calls and results (MAPPING §3).

Ids are opaque and kept unchanged both ways so later turns still match. Arguments travel as a
JSON *string* in OpenAI and a parsed *object* in Anthropic: an argument string that is not a
JSON object is the client's error (400), never forwarded as a string.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import invalid_request
from proxy.providers.anthropic.images import openai_part_to_block

JSON = dict[str, Any]

_EMPTY_SCHEMA: JSON = {"type": "object", "properties": {}}
_OPENAI_CHOICE = {"auto": "auto", "required": "any", "none": "none"}
_ANTHROPIC_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


# -- OpenAI -> Anthropic ------------------------------------------------------------------


def anthropic_tools(body: JSON) -> JSON:
    """``tools`` and ``tool_choice`` for Anthropic from ``tools``/``functions``,
    ``tool_choice``/``function_call`` and ``parallel_tool_calls``; {} when there are no tools
    (a tool_choice without tools means nothing, and Anthropic would reject it)."""
    legacy = body.get("tools") is None and body.get("functions") is not None
    tools = _legacy_tools(body["functions"]) if legacy else _function_tools(body.get("tools"))
    if not tools:
        return {}
    raw = body.get("function_call") if legacy else body.get("tool_choice")
    choice, allowed = _choice(raw, "function_call" if legacy else "tool_choice", legacy)
    if allowed is not None:
        tools = [tool for tool in tools if tool["name"] in allowed]
    if body.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    out: JSON = {"tools": tools}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _function_tools(tools: Any) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise invalid_request(
                f"Tool type {kind!r} at 'tools[{i}]' has no Anthropic equivalent; "
                "only function tools are supported.",
                f"tools[{i}].type",
            )
        out.append(_tool(tool.get("function"), f"tools[{i}].function"))
    return out


def _legacy_tools(functions: Any) -> list[JSON]:
    if not isinstance(functions, list):
        raise invalid_request("'functions' must be an array.", "functions")
    return [_tool(fn, f"functions[{i}]") for i, fn in enumerate(functions)]


def _tool(fn: Any, where: str) -> JSON:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise invalid_request(f"'{where}.name' is required.", f"{where}.name")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise invalid_request(f"'{where}.parameters' must be an object.", f"{where}.parameters")
    schema = {"type": "object", **params} if params else dict(_EMPTY_SCHEMA)
    tool: JSON = {"name": fn["name"]}
    if isinstance(fn.get("description"), str):
        tool["description"] = fn["description"]
    tool["input_schema"] = schema
    if isinstance(fn.get("strict"), bool):
        tool["strict"] = fn["strict"]
    return tool


def _choice(raw: Any, param: str, legacy: bool) -> tuple[JSON | None, set[str] | None]:
    """(Anthropic tool_choice or None for the default, allowed tool names or None for all)."""
    if raw is None:
        return None, None
    if isinstance(raw, str) and raw in _OPENAI_CHOICE and not (legacy and raw == "required"):
        return {"type": _OPENAI_CHOICE[raw]}, None
    if isinstance(raw, dict):
        kind = "function" if legacy else raw.get("type")
        named = raw if legacy else raw.get("function")
        if kind == "function" and isinstance(named, dict) and isinstance(named.get("name"), str):
            return {"type": "tool", "name": named["name"]}, None
        if kind == "allowed_tools":
            return _allowed(raw.get("allowed_tools"), param)
    raise invalid_request(f"Unsupported '{param}' value: {raw!r}.", param)


def _allowed(spec: Any, param: str) -> tuple[JSON, set[str]]:
    mode = spec.get("mode") if isinstance(spec, dict) else None
    tools = spec.get("tools") if isinstance(spec, dict) else None
    if mode not in ("auto", "required") or not isinstance(tools, list):
        raise invalid_request(f"'{param}.allowed_tools' needs a mode and tools.", param)
    names = {(tool.get("function") or {}).get("name") for tool in tools if isinstance(tool, dict)}
    return {"type": _OPENAI_CHOICE[mode]}, {name for name in names if isinstance(name, str)}


def tool_use_blocks(calls: Any, where: str) -> list[JSON]:
    """An assistant message's ``tool_calls`` as Anthropic ``tool_use`` blocks."""
    if not isinstance(calls, list):
        raise invalid_request(f"'{where}' must be an array.", where)
    blocks = []
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise invalid_request(f"Only function tool calls are supported ('{at}').", at)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        if not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise invalid_request(f"'{at}' needs an id and a function name.", at)
        arguments = parse_arguments(fn.get("arguments"), f"{at}.function.arguments")
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": arguments}
        )
    return blocks


def parse_arguments(arguments: Any, where: str) -> JSON:
    """A tool call's ``arguments`` JSON string as an object ("" and null mean no arguments)."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_request(f"'{where}' must be a JSON object encoded as a string.", where)
    return parsed


def tool_result_block(tool_use_id: Any, content: Any, where: str) -> JSON:
    """A ``tool`` (or legacy ``function``) message as an Anthropic ``tool_result`` block."""
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise invalid_request(f"'{where}.tool_call_id' is required.", f"{where}.tool_call_id")
    block: JSON = {"type": "tool_result", "tool_use_id": tool_use_id}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        parts = [openai_part_to_block(p, f"{where}.content[{k}]") for k, p in enumerate(content)]
        if any(parts):
            block["content"] = [part for part in parts if part]
    elif content is not None:
        raise invalid_request(
            f"'{where}.content' must be a string or an array.", f"{where}.content"
        )
    return block


# -- Anthropic -> OpenAI ------------------------------------------------------------------


def openai_tools(body: JSON) -> JSON:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` for an OpenAI upstream."""
    tools = body.get("tools")
    if not tools:
        return {}
    out: JSON = {"tools": [_openai_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]}
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in _ANTHROPIC_CHOICE:
            out["tool_choice"] = _ANTHROPIC_CHOICE[kind]
        if choice.get("disable_parallel_tool_use") is True and kind != "none":
            out["parallel_tool_calls"] = False
    return out


def _openai_tool(tool: Any, where: str) -> JSON:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise invalid_request(
            f"Server tool {kind!r} at '{where}' cannot be served by an OpenAI-format model.",
            f"{where}.type",
        )
    fn: JSON = {"name": tool.get("name")}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("input_schema") or dict(_EMPTY_SCHEMA)
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def tool_call(block: JSON) -> JSON:
    """An Anthropic ``tool_use`` block as an OpenAI ``tool_calls`` entry (compact JSON)."""
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


def tool_message(block: JSON) -> JSON:
    """An Anthropic ``tool_result`` block as an OpenAI ``tool`` message (text only: OpenAI
    tool messages cannot hold images, so those are dropped)."""
    content = block.get("content")
    if isinstance(content, list):
        texts = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        parts: str | list[JSON] = [
            {"type": "text", "text": str(b.get("text") or "")} for b in texts
        ] or ""
    else:
        parts = str(content or "")
    if block.get("is_error") is True:  # no OpenAI field: keep the signal in the text
        if isinstance(parts, list):
            parts[0]["text"] = "Error: " + parts[0]["text"]
        else:
            parts = "Error: " + parts
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": parts}
