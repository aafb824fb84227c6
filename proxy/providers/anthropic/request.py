"""Requests between OpenAI Chat Completions and Anthropic Messages (MAPPING §2, §3, §3b).

OpenAI -> Anthropic decisions:

- ``temperature`` above 1 is a 400 naming ``temperature``, not a silent clamp: OpenAI's range
  is 0-2 and Anthropic's 0-1, and quietly sampling at 1 instead of 1.6 would change output the
  client asked for. ``top_p: 1`` is dropped (a no-op that some Claude models refuse alongside
  ``temperature``); ``top_k`` passes through as a vendor extension.
- Parameters with no Anthropic equivalent are dropped silently only at their neutral value
  (``n: 1``, a penalty of 0, ``logprobs: false``, null...); any other value is a 400 naming
  them, unless the model or provider sets ``drop_unsupported_params``, in which case they are
  dropped and their names returned for the caller to log. Unknown parameters count as
  unsupported: Anthropic answers 400 to any field it does not know.
- ``stream_options`` is OpenAI-only and always dropped; whitespace-only stop sequences, which
  Anthropic refuses, are left out.

Anthropic -> OpenAI decisions: ``top_k``, ``thinking``, ``cache_control``, ``container``,
``inference_geo`` and ``output_config.effort`` have no Chat Completions field and are dropped
(OpenAI caches prompts by itself; reasoning effort needs a configured per-model mapping);
``metadata.user_id`` becomes ``safety_identifier``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.errors import invalid_request
from proxy.providers import params
from proxy.providers.anthropic import images, tools
from proxy.providers.params import never

JSON = dict[str, Any]

#: The user turn put first when a conversation would otherwise not start with one.
PLACEHOLDER = "."


# Parameters without an Anthropic equivalent -> "is this value a no-op?" (null always is).
_UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    **params.NEUTRAL,
    "n": lambda v: v == 1,
    "seed": never,
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "prompt_cache_retention": never,
    "prompt_cache_options": never,
    "moderation": never,
    "reasoning_effort": lambda v: v == "none",
    "service_tier": lambda v: v == "auto",
    "response_format": lambda v: isinstance(v, dict) and v.get("type") in ("text", "json_schema"),
}
# Parameters this module translates (or, for stream_options, knowingly drops).
_HANDLED = frozenset(
    {"model", "messages", "stream", "stream_options", "user", "safety_identifier"}
    | {"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop"}
    | {"tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"}
)


def openai_to_anthropic(
    body: JSON, *, upstream_model: str, default_max_tokens: int, drop_unsupported: bool
) -> tuple[JSON, list[str]]:
    """An OpenAI Chat Completions request as an Anthropic Messages request, plus the names of
    the parameters dropped on the way (non-empty only with ``drop_unsupported``)."""
    dropped = _unsupported(body, drop_unsupported)
    system, messages = _anthropic_messages(body.get("messages"))
    out: JSON = {"model": upstream_model, "max_tokens": _max_tokens(body, default_max_tokens)}
    if system:
        out["system"] = system
    out["messages"] = messages
    out.update(_sampling(body))
    out.update(tools.anthropic_tools(body))
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    if body.get("service_tier") == "auto":
        out["service_tier"] = "auto"
    output_format = _output_format(body.get("response_format"))
    if output_format is not None:
        out["output_config"] = {"format": output_format}
    return out, dropped


def _unsupported(body: JSON, drop: bool) -> list[str]:
    """Names of non-neutral parameters Anthropic cannot take; raise unless ``drop``."""
    return params.unsupported(body, _HANDLED, _UNSUPPORTED, drop=drop, vendor="an Anthropic")


def _max_tokens(body: JSON, default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise invalid_request(f"'{name}' must be a non-negative integer.", name)
        return value
    return default


def _sampling(body: JSON) -> JSON:
    out: JSON = {}
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise invalid_request("'temperature' must be a number.", "temperature")
        if not 0 <= temperature <= 1:
            raise invalid_request(
                f"'temperature' must be between 0 and 1 for an Anthropic model; got {temperature}.",
                "temperature",
            )
        out["temperature"] = temperature
    if body.get("top_p") is not None and body["top_p"] != 1:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if stop is not None and not all(isinstance(s, str) for s in stops):
        raise invalid_request("'stop' must be a string or an array of strings.", "stop")
    stops = [s for s in stops if s.strip()]
    if stops:
        out["stop_sequences"] = stops
    return out


def _output_format(response_format: Any) -> JSON | None:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise invalid_request(
            "'response_format.json_schema.schema' must be an object.", "response_format"
        )
    return {"type": "json_schema", "schema": schema}


# -- messages, OpenAI -> Anthropic --------------------------------------------------------


def _anthropic_messages(messages: Any) -> tuple[str | None, list[JSON]]:
    """(system text, Anthropic messages): system/developer messages are lifted out in order
    and joined with newlines; the rest become user/assistant turns, merged by role. Anthropic
    wants a user turn first (older API versions 400 without one, e.g. for a system-only
    request or a history trimmed to start with the assistant), so a placeholder leads then."""
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", "messages")
    system: list[str] = []
    turns: list[tuple[str, list[JSON]]] = []
    legacy_ids: dict[str, str] = {}  # function name -> id given to its legacy function_call
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object.", where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), f"{where}.content")
            if text.strip():
                system.append(text)
            continue
        role, blocks = _turn(message, i, legacy_ids)
        if blocks:
            turns.append((role, blocks))
    if not system and not turns:
        raise invalid_request("'messages' hold no content to send.", "messages")
    merged = _merge(turns)
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": PLACEHOLDER})
    return "\n".join(system) or None, merged


def _turn(message: JSON, index: int, legacy_ids: dict[str, str]) -> tuple[str, list[JSON]]:
    where = f"messages[{index}]"
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        return "user", _content_blocks(content, f"{where}.content")
    if role == "assistant":
        blocks = _content_blocks(content, f"{where}.content")
        if message.get("tool_calls"):
            blocks += tools.tool_use_blocks(message["tool_calls"], f"{where}.tool_calls")
        call = message.get("function_call")
        if isinstance(call, dict):  # legacy: no id on the wire, so give it a stable one
            call_id = f"toolu_legacy_{index}"
            legacy_ids[str(call.get("name"))] = call_id
            blocks += tools.tool_use_blocks(
                [{"id": call_id, "type": "function", "function": call}], f"{where}.function_call"
            )
        return "assistant", blocks
    if role == "tool":
        return "user", [tools.tool_result_block(message.get("tool_call_id"), content, where)]
    if role == "function":
        call_id = legacy_ids.get(str(message.get("name")), f"toolu_legacy_{message.get('name')}")
        return "user", [tools.tool_result_block(call_id, content, where)]
    raise invalid_request(f"'{where}.role' {role!r} is not a chat role.", f"{where}.role")


def _content_blocks(content: Any, where: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise invalid_request(f"'{where}' must be a string or an array.", where)
    blocks = [images.openai_part_to_block(part, f"{where}[{k}]") for k, part in enumerate(content)]
    return [block for block in blocks if block]


def _plain_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    blocks = _content_blocks(content, where)
    if any(block["type"] != "text" for block in blocks):
        raise invalid_request(f"'{where}' of a system message may hold only text.", where)
    return "\n".join(block["text"] for block in blocks)


def _merge(turns: list[tuple[str, list[JSON]]]) -> list[JSON]:
    """One message per run of same-role turns; tool results first in a user turn; a lone text
    block as a plain string; no trailing whitespace on a final assistant prefill."""
    merged: list[tuple[str, list[JSON]]] = []
    for role, blocks in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, list(blocks)))
    if merged and merged[-1][0] == "assistant" and merged[-1][1][-1]["type"] == "text":
        last = merged[-1][1]
        last[-1] = {**last[-1], "text": last[-1]["text"].rstrip()}
        if not last[-1]["text"]:
            last.pop()
        if not last:
            merged.pop()
    out = []
    for role, blocks in merged:
        if role == "user":
            blocks.sort(key=lambda block: block["type"] != "tool_result")  # stable
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})
    return out


# -- Anthropic -> OpenAI ------------------------------------------------------------------


def anthropic_to_openai(body: JSON, *, upstream_model: str) -> JSON:
    """An Anthropic Messages request (from an Anthropic-SDK client) as an OpenAI request."""
    out: JSON = {"model": upstream_model, "messages": _openai_messages(body)}
    if body.get("max_tokens") is not None:
        out["max_completion_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = body.get("stop_sequences")
    if stops:
        if len(stops) > 4:
            raise invalid_request(
                "An OpenAI-format model takes at most 4 stop sequences.", "stop_sequences"
            )
        out["stop"] = list(stops)
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        out["safety_identifier"] = user
    out.update(tools.openai_tools(body))
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema")
    if isinstance(schema, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema, "strict": True},
        }
    if body.get("service_tier") in ("auto", "standard_only"):
        out["service_tier"] = "auto" if body["service_tier"] == "auto" else "default"
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
        if body["stream"]:
            out["stream_options"] = {"include_usage": True}
    return out


def _openai_messages(body: JSON) -> list[JSON]:
    out: list[JSON] = []
    system = _system_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}]"
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            out.extend(_openai_assistant(content))
        elif role == "system":
            out.append({"role": "system", "content": _system_text(content)})
        else:
            out.extend(_openai_user(content, f"{where}.content"))
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "\n".join(str(b.get("text") or "") for b in system if isinstance(b, dict))
    return system or ""


def _openai_assistant(blocks: list[Any]) -> list[JSON]:
    """Text joined, tool_use -> tool_calls, thinking dropped (OpenAI cannot take it back)."""
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    calls = [tools.tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    if not text and not calls:
        return []
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _openai_user(blocks: list[Any], where: str) -> list[JSON]:
    """Tool results first, one ``tool`` message each; the remaining blocks as one user message."""
    out = [tools.tool_message(b) for b in blocks if b.get("type") == "tool_result"]
    parts = [
        images.anthropic_block_to_part(b, f"{where}[{k}]")
        for k, b in enumerate(blocks)
        if b.get("type") != "tool_result"
    ]
    parts = [part for part in parts if part]
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


# -- inbound check ------------------------------------------------------------------------


def validate_messages_request(body: Any) -> None:
    """A cheap hot-path check of an inbound ``/v1/messages`` body; names the bad field.

    It checks what the gateway relies on; the upstream stays the judge of the finer rules.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid_request("'model' is required and must be a non-empty string.", "model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid_request("'max_tokens' is required and must be an integer >= 1.", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", "messages")
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")
    _check_types(body)


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise invalid_request(f"'{where}' must be an object.", where)
    if message.get("role") not in ("user", "assistant"):
        raise invalid_request(f"'{where}.role' must be 'user' or 'assistant'.", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_request(
            f"'{where}.content' must be a string or an array.", f"{where}.content"
        )
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid_request(
                f"'{where}.content[{k}]' must be a typed block.", f"{where}.content[{k}]"
            )


_CHECKS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("system", (str, list), "a string or an array"),
    ("stream", bool, "a boolean"),
    ("tools", list, "an array"),
    ("tool_choice", dict, "an object"),
    ("metadata", dict, "an object"),
    ("stop_sequences", list, "an array"),
    ("temperature", (int, float), "a number"),
    ("top_p", (int, float), "a number"),
    ("top_k", int, "an integer"),
)


def _check_types(body: JSON) -> None:
    for name, kind, what in _CHECKS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise invalid_request(f"'{name}' must be {what}.", name)
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise invalid_request(f"'tools[{i}]' must be an object with a name.", f"tools[{i}]")
    if not all(isinstance(s, str) for s in body.get("stop_sequences") or ()):
        raise invalid_request("'stop_sequences' must hold strings.", "stop_sequences")
