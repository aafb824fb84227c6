"""Cohere v2 chat responses as unified ``chat.completion`` objects (MAPPING §9).

- Text content items are joined; ``thinking`` items are dropped (Chat Completions has no field
  for them, and Anthropic clients would need a signature Cohere does not give).
- ``tool_plan`` (Cohere's sentence before its tool calls) becomes the assistant's text before
  the calls: OpenAI clients read it as ``content`` beside ``tool_calls``, Anthropic clients
  as a text block before the ``tool_use`` blocks, and it goes back to Cohere as ``tool_plan``
  on the next turn, as Cohere asks. It is billed output, so it is not thrown away.
- Citations are kept for OpenAI clients as a ``citations`` extension on the message (Cohere's
  own shape: Chat Completions ``annotations`` only carry URL citations); Anthropic clients do
  not get them (its text-block citations point into request documents Cohere never saw).
- Usage is ``usage.billed_units``, what Cohere bills; ``usage.tokens`` also counts prompt
  template tokens it does not bill, so it is used only when ``billed_units`` is missing; with
  neither, usage (and so cost) is unknown, never zero.
- ``finish_reason`` ``ERROR``/``TIMEOUT`` is not an answer: it becomes an error in the
  client's dialect (``provider_error``/``timeout``).
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ErrorType, GatewayError
from proxy.pricing import unknown_usage

JSON = dict[str, Any]

FINISH_REASON: dict[str, str] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
FAILED: dict[str, ErrorType] = {"ERROR": ErrorType.PROVIDER_ERROR, "TIMEOUT": ErrorType.TIMEOUT}


def finish_reason(reason: Any, error: Any = None) -> str:
    """Cohere's ``finish_reason`` as OpenAI's; a failed generation raises a GatewayError."""
    if error or reason in FAILED:
        kind = FAILED.get(str(reason), ErrorType.PROVIDER_ERROR)
        detail = f": {error}" if error else "."
        raise GatewayError(kind, f"Cohere ended the generation with {reason or 'an error'}{detail}")
    return FINISH_REASON.get(str(reason), "stop")


def _count(value: Any) -> int:
    """Cohere's counts are JSON numbers, floats in streams (``18.0``)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def openai_usage(usage: Any) -> JSON:
    """Cohere ``usage`` as an OpenAI ``usage`` object, from the billed units (the counted
    ``tokens`` only when no billed units came; unknown counts when neither did)."""
    usage = usage if isinstance(usage, dict) else {}
    for key in ("billed_units", "tokens"):
        counts = usage.get(key)
        if isinstance(counts, dict) and _reports(counts):
            prompt = _count(counts.get("input_tokens"))
            completion = _count(counts.get("output_tokens"))
            return {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
    return unknown_usage("openai")


def _reports(counts: JSON) -> bool:
    return counts.get("input_tokens") is not None or counts.get("output_tokens") is not None


def tool_call(call: Any) -> JSON:
    """A Cohere tool call (already OpenAI-shaped) with exactly OpenAI's fields."""
    call = call if isinstance(call, dict) else {}
    fn = call.get("function") if isinstance(call.get("function"), dict) else {}
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {"name": str(fn.get("name") or ""), "arguments": fn.get("arguments") or "{}"},
    }


def message_text(message: JSON) -> str:
    """The plan (when there are tool calls) and the text items, in that order."""
    texts = [
        str(item.get("text") or "")
        for item in message.get("content") or ()
        if isinstance(item, dict) and item.get("type") == "text"
    ]
    text = "".join(texts)
    plan = message.get("tool_plan")
    if isinstance(plan, str) and plan and message.get("tool_calls"):
        return f"{plan}\n\n{text}" if text else plan
    return text


def to_unified(response: JSON, *, created: int) -> JSON:
    """A Cohere ``ChatResponseV2`` as a ``chat.completion`` (``model`` left for the caller,
    which knows it: Cohere's response does not say)."""
    message = response.get("message") if isinstance(response.get("message"), dict) else {}
    reason = finish_reason(response.get("finish_reason"))
    calls = [tool_call(call) for call in message.get("tool_calls") or ()]
    text = message_text(message)
    out_message: JSON = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        out_message["tool_calls"] = calls
    if message.get("citations"):
        out_message["citations"] = message["citations"]
    return {
        "id": str(response.get("id") or ""),
        "object": "chat.completion",
        "created": created,
        "model": "",
        "choices": [
            {"index": 0, "message": out_message, "logprobs": None, "finish_reason": reason}
        ],
        "usage": openai_usage(response.get("usage")),
    }
