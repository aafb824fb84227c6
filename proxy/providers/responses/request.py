"""A Responses API request (``POST /v1/responses``) as a unified Chat Completions request.

Stateless: the whole conversation must be in ``input``. What needs state kept by the vendor
(``previous_response_id``, ``conversation``, ``store: true``, stored prompts, file ids, item
references, background runs) or tools the vendor runs itself (web search, file search, code
interpreter, computer use, ...) cannot be translated for a provider that has neither: those
are a 400 ``invalid_request`` naming the parameter. A vendor that speaks the Responses API
natively never comes here: its requests pass through (:func:`proxy.engine.dialects.native_target`).
"""

from __future__ import annotations

from typing import Any

from proxy.errors import GatewayError, invalid_request
from proxy.providers.checks import check_numbers

JSON = dict[str, Any]
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_NUMERIC = ("temperature", "top_p")
_INTEGER = ("max_output_tokens", "top_logprobs", "max_tool_calls")
# Parameters copied as they are (same name and meaning in Chat Completions).
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "stream")
# Parameters that ask the vendor to keep or fetch state; a stateless provider has none.
_STATEFUL = ("previous_response_id", "conversation", "prompt", "background")
NO_STATE = (
    "'{param}' needs conversation state kept by the model's provider, and this model's "
    "provider keeps none (the gateway translates the Responses API for it statelessly). "
    "Send the whole conversation in 'input' instead."
)


def stateless_error(param: str) -> GatewayError:
    return invalid_request(NO_STATE.format(param=param), param)


def builtin_tool_error(kind: str, param: str) -> GatewayError:
    return invalid_request(
        f"Built-in tool '{kind}' runs on OpenAI's servers; this model's provider has no such "
        "tool (the gateway translates the Responses API for it). Use function tools instead.",
        param,
    )


def validate_responses_request(body: Any) -> None:
    """A cheap hot-path check of an inbound Responses body; names the bad field. The
    statefulness checks come later, only for providers that get a translation."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a non-empty string.", "model")
    given = body.get("input")
    if given is None and not any(body.get(name) for name in _STATEFUL):
        raise invalid_request("'input' is required: a string or an array of items.", "input")
    if given is not None and not isinstance(given, str | list):
        raise invalid_request("'input' must be a string or an array of items.", "input")
    for index, item in enumerate(given if isinstance(given, list) else ()):
        if not isinstance(item, dict):
            raise invalid_request(f"'input[{index}]' must be an object.", f"input[{index}]")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise invalid_request("'stream' must be a boolean.", "stream")
    check_numbers(body, _NUMERIC, _INTEGER)
    for name in ("tools", "include"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise invalid_request(f"'{name}' must be an array.", name)
    for name in ("text", "reasoning"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise invalid_request(f"'{name}' must be an object.", name)


def responses_to_unified(body: JSON) -> JSON:
    """The unified (Chat Completions) request for a Responses request; raises
    ``invalid_request`` for what needs provider-side state or built-in tools."""
    for name in _STATEFUL:
        if body.get(name):
            raise stateless_error(name)
    if body.get("store") is True:
        raise stateless_error("store")
    out: JSON = {"model": body["model"], "messages": _messages(body)}
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    tools = [_tool(tool, i) for i, tool in enumerate(body.get("tools") or ())]
    if tools:
        out["tools"] = tools
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    out.update(_text(body.get("text")))
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


def _messages(body: JSON) -> list[JSON]:
    out: list[JSON] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        out.append({"role": "system", "content": instructions})
    elif instructions:
        raise invalid_request("'instructions' must be a string.", "instructions")
    given = body.get("input")
    if isinstance(given, str):
        return [*out, {"role": "user", "content": given}]
    for index, item in enumerate(given or ()):
        _item(out, item, f"input[{index}]")
    if not any(m["role"] in ("user", "assistant", "tool") for m in out):
        raise invalid_request("'input' has no message to answer.", "input")
    return out


def _item(out: list[JSON], item: JSON, where: str) -> None:
    """Append one input item to the unified messages (a function call joins the assistant
    message before it: one assistant turn may say something and call tools)."""
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        out.append(_message(item, where))
    elif kind == "function_call":
        call = {
            "id": _string(item, "call_id", where),
            "type": "function",
            "function": {
                "name": _string(item, "name", where),
                "arguments": _string(item, "arguments", where),
            },
        }
        last = out[-1] if out else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        content = _tool_output(item.get("output"), f"{where}.output")
        out.append(
            {"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": content}
        )
    elif kind == "reasoning":
        return  # the vendor's own (often encrypted) reasoning: nothing another model can read
    elif kind == "item_reference":
        raise stateless_error(f"{where}.id")
    else:
        raise invalid_request(
            f"'{where}.type' {kind!r} cannot be translated for this model's provider (items "
            "supported: message, function_call, function_call_output, reasoning).",
            f"{where}.type",
        )


def _string(item: JSON, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise invalid_request(f"'{where}.{key}' must be a string.", f"{where}.{key}")
    return value


def _message(item: JSON, where: str) -> JSON:
    role = item.get("role")
    if role not in _ROLES:
        raise invalid_request(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}.",
            f"{where}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid_request(
            f"'{where}.content' must be a string or an array.", f"{where}.content"
        )
    parts = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    if role != "user":  # only user messages take images and files in Chat Completions
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> JSON:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image":
        if part.get("file_id"):
            raise stateless_error(f"{where}.file_id")
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise invalid_request(f"'{where}.image_url' must be a URL.", f"{where}.image_url")
        return {
            "type": "image_url",
            "image_url": {"url": url, "detail": part.get("detail") or "auto"},
        }
    if kind == "input_file":
        if part.get("file_id"):
            raise stateless_error(f"{where}.file_id")
        if not isinstance(part.get("file_data"), str):
            raise invalid_request(
                f"'{where}' needs 'file_data' (a data URL) for this model's provider.", where
            )
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise invalid_request(f"'{where}.type' {kind!r} is not supported here.", f"{where}.type")


def _tool_output(output: Any, where: str) -> Any:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise invalid_request(f"'{where}' must be a string or an array.", where)
    parts = [_part(part, f"{where}[{i}]") for i, part in enumerate(output)]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool(tool: Any, index: int) -> JSON:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise builtin_tool_error(str(kind), f"tools[{index}]")
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"'tools[{index}].name' is required.", f"tools[{index}].name")
    function: JSON = {"name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        named = [t.get("name") for t in choice.get("tools") or () if t.get("type") == "function"]
        tools = [{"type": "function", "function": {"name": n}} for n in named]
        mode = choice.get("mode") or "auto"
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}
    raise builtin_tool_error(str(kind), "tool_choice")


def _text(text: Any) -> JSON:
    """``text.format`` as ``response_format``, ``text.verbosity`` as ``verbosity``."""
    if not isinstance(text, dict):
        return {}
    out: JSON = {}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    spec = text.get("format")
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = {
            key: spec[key] for key in ("name", "schema", "strict", "description") if key in spec
        }
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    return out
