"""Unified (OpenAI Chat Completions) requests as Gemini ``generateContent`` bodies (MAPPING §7).

Decisions:

- ``system`` and ``developer`` messages, wherever they are, become ``systemInstruction`` parts
  in order; assistant turns become role ``model``; tool results become ``functionResponse``
  parts of a ``user`` turn (text wrapped as ``{"output": text}``), named after the call they
  answer (OpenAI tool messages carry only the call's id) and, when Gemini gave the call an id
  and the endpoint takes ids, echoing it. Adjacent turns of one role are merged, so parallel
  calls and their results line up one turn each.
- Tool-call ids made by :mod:`.ids` give back each call's ``thoughtSignature`` verbatim.
- Images: ``data:`` URLs -> ``inlineData``; ``gs://`` and Gemini Files-API URIs -> ``fileData``.
  Other https image URLs are a 400: the gateway does not fetch URLs for the model (a sidecar
  that fetches arbitrary URLs is an SSRF and latency hazard), the client sends the bytes.
- Empty text parts, which Gemini refuses, are never sent; a conversation with no turn left
  gets a placeholder user turn.
- Parameters Gemini lacks are dropped silently at their neutral value and otherwise refused
  with a 400 naming them, or dropped under ``drop_unsupported_params``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any

import orjson

from proxy.errors import invalid_request
from proxy.providers import params
from proxy.providers.gemini import ids

JSON = dict[str, Any]
PLACEHOLDER = "."
_INVALID = object()  # arguments that did not parse
_FILES_API = "https://generativelanguage.googleapis.com/"
# reasoning_effort -> thinkingBudget, as Google's own OpenAI-compatible endpoint maps it.
_THINKING_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3"}


_UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    **params.NEUTRAL,
    "parallel_tool_calls": lambda v: v is True,
    "service_tier": lambda v: v == "auto",
}
_HANDLED = frozenset(
    {"model", "messages", "stream", "stream_options", "user", "safety_identifier"}
    | {"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "n"}
    | {"seed", "presence_penalty", "frequency_penalty", "response_format", "reasoning_effort"}
    | {"tools", "tool_choice", "functions", "function_call"}
)


def unified_to_gemini(
    body: JSON, *, drop_unsupported: bool = False, send_ids: bool = True
) -> tuple[JSON, list[str]]:
    """A unified request as a ``GenerateContentRequest`` (the model goes in the URL), plus the
    names of the parameters dropped (non-empty only with ``drop_unsupported``)."""
    dropped = _unsupported(body, drop_unsupported)
    system, contents = _contents(body.get("messages"), send_ids)
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools, tool_config = _tools(body)
    if tools:
        out["tools"] = tools
    if tool_config:
        out["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out, dropped


def _unsupported(body: JSON, drop: bool) -> list[str]:
    return params.unsupported(body, _HANDLED, _UNSUPPORTED, drop=drop, vendor="a Gemini")


# --- messages ------------------------------------------------------------------------------


def _contents(messages: Any, send_ids: bool) -> tuple[list[JSON], list[JSON]]:
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", "messages")
    system: list[JSON] = []
    contents: list[JSON] = []
    calls: dict[str, str] = {}  # tool-call id -> function name, from earlier assistant turns
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request(f"'{_at(index)}' must be an object.", _at(index))
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_parts(message.get("content"), index)
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), index))
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, index, calls, send_ids))
        elif role in ("tool", "function"):
            _append(contents, "user", [_function_response(message, index, calls, send_ids)])
        else:
            where = _at(index)
            raise invalid_request(f"'{where}.role' {role!r} is not supported.", f"{where}.role")
    if not contents:
        contents.append({"role": "user", "parts": [{"text": PLACEHOLDER}]})
    return system, contents


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _at(index: int) -> str:
    """Where messages[index] is, for an error (made only then: the hot path formats nothing)."""
    return f"messages[{index}]"


def _text_parts(content: Any, index: int) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        where = _at(index)
        raise invalid_request(f"'{where}.content' must be a string or an array.", where)
    out = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            path = f"{_at(index)}.content[{i}]"
            raise invalid_request(f"'{path}' must be a text part here.", path)
        text = part.get(part["type"])
        if isinstance(text, str) and text:
            out.append({"text": text})
    return out


def _user_parts(content: Any, index: int) -> list[JSON]:
    if not isinstance(content, list):
        return _text_parts(content, index)
    out = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            out += _text_parts([part], index)
            continue
        path = f"{_at(index)}.content[{i}]"
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            out.append(media_part(url, f"{path}.image_url.url"))
        elif kind == "input_audio":
            out.append(_audio_part(part.get("input_audio"), f"{path}.input_audio"))
        elif kind == "file":
            file = part.get("file") if isinstance(part.get("file"), dict) else {}
            out.append(media_part(file.get("file_data"), f"{path}.file.file_data"))
        else:
            raise invalid_request(
                f"Content part type {kind!r} at '{path}' has no Gemini equivalent.", path
            )
    return out


def media_part(url: Any, where: str) -> JSON:
    """A ``data:`` URL as ``inlineData``; a Cloud Storage or Files-API URI as ``fileData``."""
    if not isinstance(url, str) or not url:
        raise invalid_request(f"'{where}' must be a non-empty string URL.", where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime or not data:
            raise invalid_request(f"'{where}' must be a base64 data URL (data:TYPE;base64,...).")
        return {"inlineData": {"mimeType": mime.lower(), "data": data}}
    if url.startswith("gs://") or url.startswith(_FILES_API):
        mime = mimetypes.guess_type(url)[0]
        return {"fileData": {"mimeType": mime, "fileUri": url} if mime else {"fileUri": url}}
    raise invalid_request(
        f"'{where}': Gemini models take images as data: URLs (base64) or gs:// / Files-API URIs; "
        "the gateway does not fetch http(s) URLs. Send the image bytes as a data: URL.",
        where,
    )


def _audio_part(audio: Any, where: str) -> JSON:
    audio = audio if isinstance(audio, dict) else {}
    mime = _AUDIO.get(str(audio.get("format")))
    if mime is None or not isinstance(audio.get("data"), str):
        raise invalid_request(f"'{where}' needs base64 'data' and a 'format' (wav, mp3).", where)
    return {"inlineData": {"mimeType": mime, "data": audio["data"]}}


def _model_parts(message: JSON, index: int, calls: dict[str, str], send_ids: bool) -> list[JSON]:
    parts = _text_parts(message.get("content"), index)
    tool_calls = message.get("tool_calls") or []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        tool_calls = [*tool_calls, {"id": None, "function": legacy}]
    for i, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            path = f"{_at(index)}.tool_calls[{i}]"
            raise invalid_request(f"'{path}.function.name' must be a string.", path)
        name = function["name"]
        ref = ids.decode(call.get("id"))
        arguments = function.get("arguments")
        args = arguments if isinstance(arguments, dict) else _arguments(arguments, index, i)
        body: JSON = {"name": name, "args": args}
        if send_ids and ref.gemini_id:
            body["id"] = ref.gemini_id
        part: JSON = {"functionCall": body}
        if ref.signature:
            part["thoughtSignature"] = ref.signature
        parts.append(part)
        if isinstance(call.get("id"), str):
            calls[call["id"]] = name
    return parts


def _arguments(arguments: Any, index: int, call: int) -> JSON:
    if arguments in (None, ""):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = _INVALID
    if not isinstance(value, dict):
        where = f"{_at(index)}.tool_calls[{call}]"
        problem = "is not valid JSON" if value is _INVALID else "must be a JSON object"
        raise invalid_request(f"'{where}.function.arguments' {problem}.", where)
    return value


def _function_response(message: JSON, index: int, calls: dict[str, str], send_ids: bool) -> JSON:
    call_id = message.get("tool_call_id")
    name = calls.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        where = _at(index)
        raise invalid_request(
            f"'{where}' answers tool call {call_id!r}, which no earlier assistant message made: "
            "Gemini needs the function's name.",
            f"{where}.tool_call_id",
        )
    content = message.get("content")
    if not isinstance(content, str):
        content = "".join(p["text"] for p in _text_parts(content, index))
    body: JSON = {"name": name, "response": {"output": content}}
    ref = ids.decode(call_id)
    if send_ids and ref.gemini_id:
        body["id"] = ref.gemini_id
    return {"functionResponse": body}


# --- tools and generation config -------------------------------------------------------------


def _tools(body: JSON) -> tuple[list[JSON], JSON]:
    if not body.get("tools") and not body.get("functions"):
        return [], {}
    declarations = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid_request(f"'tools[{i}]': only function tools have a Gemini equivalent.")
        declarations.append(_declaration(tool.get("function"), "tools[{}].function", i))
    for i, function in enumerate(body.get("functions") or []):
        declarations.append(_declaration(function, "functions[{}]", i))
    config = _tool_config(body.get("tool_choice", body.get("function_call")))
    tools = [{"functionDeclarations": declarations}] if declarations else []
    return tools, config if declarations else {}


def _declaration(function: Any, at: str, index: int) -> JSON:
    """One function declaration; ``at`` formatted with ``index`` says where, on an error."""
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        where = at.format(index)
        raise invalid_request(f"'{where}.name' must be a string.", f"{where}.name")
    out: JSON = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(function.get("parameters"), dict):
        out["parametersJsonSchema"] = function["parameters"]  # JSON Schema as is (MAPPING §7)
    return out


def _tool_config(choice: Any) -> JSON:
    if choice is None:
        return {}
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    name = None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(name, str):
        raise invalid_request("'tool_choice' must be auto, none, required or a function.")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


_RENAMED = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def _generation_config(body: JSON) -> JSON:
    out: JSON = {}
    for name, value in body.items():  # one pass over what the client sent
        target = _RENAMED.get(name)
        if target is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_request(f"'{name}' must be a number.", name)
        out[target] = value
    if out.get("candidateCount") == 1:
        del out["candidateCount"]
    name, value = "max_completion_tokens", body.get("max_completion_tokens")
    if value is None:
        name, value = "max_tokens", body.get("max_tokens")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid_request(f"'{name}' must be a positive integer.", name)
        out["maxOutputTokens"] = value
    stop = body.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid_request("'stop' must be a string or an array of strings.", "stop")
        out["stopSequences"] = stops
    if body.get("response_format") is not None:
        out.update(_response_format(body["response_format"]))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGET:
            raise invalid_request(f"'reasoning_effort' {effort!r} is not supported.")
        out["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort]}
    return out


def _response_format(value: Any) -> JSON:
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        out: JSON = {"responseMimeType": "application/json"}
        if isinstance(schema, dict):
            out["responseJsonSchema"] = schema
        return out
    raise invalid_request(
        "'response_format.type' must be text, json_object or json_schema.", "response_format"
    )
