"""Non-streaming responses between Anthropic Messages and OpenAI Chat Completions (MAPPING §4).

The usage translation is the part that costs money if wrong: Anthropic's ``input_tokens``
counts only uncached input while OpenAI's ``prompt_tokens`` counts all of it, so the three
input buckets (uncached, cache reads, cache writes) are carried apart both ways. The stream
translators reuse these helpers.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.providers.anthropic.tools import tool_call

JSON = dict[str, Any]

FINISH_REASON: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASON: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: Any) -> str:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (unknown reasons read as stop)."""
    return FINISH_REASON.get(str(stop_reason), "stop")


def stop_reason(finish: Any) -> str:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason`` (OpenAI never names the stop
    sequence that matched, so ``stop`` is always ``end_turn``)."""
    return STOP_REASON.get(str(finish), "end_turn")


def openai_usage(usage: Any) -> JSON:
    """An Anthropic ``usage`` (message_start's merged with message_delta's, in a stream) as an
    OpenAI ``usage`` object with the cache buckets in ``prompt_tokens_details``."""
    usage = usage if isinstance(usage, dict) else {}
    uncached = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    output = int(usage.get("output_tokens") or 0)
    prompt = uncached + read + write
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": int(details["thinking_tokens"])}
    return out


def anthropic_usage(usage: Any) -> JSON:
    """An OpenAI ``usage`` as Anthropic's, ``input_tokens`` being the uncached remainder."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") or {}
    read = int(details.get("cached_tokens") or 0)
    write = int(details.get("cache_write_tokens") or 0)
    out: JSON = {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - read - write, 0),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": int(reasoning)}
    return out


def anthropic_to_openai_response(resp: JSON, *, created: int) -> JSON:
    """An Anthropic Message as a ``chat.completion`` (thinking blocks are dropped: Chat
    Completions has no field for them)."""
    blocks = [b for b in resp.get("content") or [] if isinstance(b, dict)]
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    calls = [tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    message: JSON = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": str(resp.get("id") or ""),
        "object": "chat.completion",
        "created": created,
        "model": str(resp.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.get("stop_reason")),
            }
        ],
        "usage": openai_usage(resp.get("usage")),
    }


def openai_to_anthropic_response(resp: JSON) -> JSON:
    """A ``chat.completion`` as an Anthropic Message (first choice; OpenAI clients of this
    gateway never get n > 1 through Anthropic, and Anthropic has one answer per message)."""
    choices = resp.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[JSON] = []
    thought = reasoning_text(message)
    if thought:  # an OpenAI-compatible reasoning model's thoughts (no signature to give)
        content.append({"type": "thinking", "thinking": thought, "signature": ""})
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):  # legacy: no id on the wire
        calls.append({"id": "toolu_legacy_0", "function": message["function_call"]})
    content.extend(_tool_use(call) for call in calls if isinstance(call, dict))
    reason = stop_reason(choice.get("finish_reason"))
    if calls and reason == "end_turn":  # some OpenAI-compatible servers say "stop" here
        reason = "tool_use"
    return {
        "id": str(resp.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": str(resp.get("model") or ""),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": anthropic_usage(resp.get("usage")),
    }


def reasoning_text(message: JSON) -> str:
    """The reasoning an OpenAI-compatible server puts beside the answer: ``reasoning_content``
    (DeepSeek, vLLM) or ``reasoning`` (OpenRouter, newer vLLM); OpenAI itself sends neither."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _tool_use(call: JSON) -> JSON:
    """A tool call with its arguments parsed; arguments that are not a JSON object (the model's
    fault, not the client's) are kept whole under ``_raw_arguments`` rather than lost."""
    fn = call.get("function") or {}
    raw = fn.get("arguments")
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except orjson.JSONDecodeError:
        parsed = None
    arguments = parsed if isinstance(parsed, dict) else {"_raw_arguments": raw}
    return {
        "type": "tool_use",
        "id": str(call.get("id") or ""),
        "name": str(fn.get("name") or ""),
        "input": arguments,
    }
