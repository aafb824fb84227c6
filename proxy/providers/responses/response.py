"""A unified ``chat.completion`` as a Responses API ``response`` object, and Responses usage.

Item ids are derived from the unified id (``resp_X``, ``msg_X``, ``fc_X_i``), so the same
answer always gets the same ids and a stream's items match its final response's.
"""

from __future__ import annotations

import re
from typing import Any

from proxy.pricing import Usage, unknown_usage

JSON = dict[str, Any]
NAME = "responses"
_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def base_id(unified_id: Any) -> str:
    """The unified id without its prefix and punctuation: the stem of every id we make."""
    text = str(unified_id or "gateway")
    for prefix in ("chatcmpl-", "chatcmpl_", "msg_", "resp_"):
        text = text.removeprefix(prefix)
    return _UNSAFE.sub("", text) or "gateway"


def resource(
    stem: str, created: int, model: str, status: str, output: list[JSON], usage: JSON | None
) -> JSON:
    """A ``response`` object; request parameters are not echoed (the unified answer does not
    carry them), so they have their defaults."""
    incomplete = _INCOMPLETE.get(status)
    out = {
        "id": f"resp_{stem}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "metadata": {},
    }
    if usage is not None:  # the published schema has no null usage: absent until known
        out["usage"] = usage
    return out


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(finish_reason: Any) -> str:
    """``completed``, or the unified finish reason that makes a response incomplete."""
    return finish_reason if finish_reason in _INCOMPLETE else "completed"


def message_item(stem: str, text: str, status: str) -> JSON:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": f"msg_{stem}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part] if status != "in_progress" else [],
    }


def call_item(stem: str, index: int, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return {
        "id": f"fc_{stem}_{index}",
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def unified_to_responses(response: JSON) -> JSON:
    """The Responses object for a unified (Chat Completions) answer."""
    stem = base_id(response.get("id"))
    choices = response.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    output: list[JSON] = []
    text = _text(message.get("content")) or message.get("refusal") or ""
    if text or not message.get("tool_calls"):
        output.append(message_item(stem, text, "completed"))
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        output.append(
            call_item(
                stem,
                index,
                str(call.get("id") or f"call_{stem}_{index}"),
                str(function.get("name") or ""),
                str(function.get("arguments") or "{}"),
                "completed",
            )
        )
    usage = response.get("usage")
    return resource(
        stem,
        int(response.get("created") or 0),
        str(response.get("model") or ""),
        status_of(choice.get("finish_reason")),
        output,
        responses_usage(usage) if isinstance(usage, dict) else None,
    )


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content or ""


def responses_usage(usage: JSON) -> JSON:
    """Unified ``usage`` as a Responses ``usage`` (``input_tokens`` counts cached tokens too,
    like ``prompt_tokens``); a ``cost`` already stamped is kept. Unknown counts (null upstream
    of us) stay unknown."""
    if Usage.read_openai(usage) is None:
        return {**unknown_usage(NAME), **({"cost": usage["cost"]} if "cost" in usage else {})}
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    inputs, outputs = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    out: JSON = {
        "input_tokens": inputs,
        "input_tokens_details": {
            "cached_tokens": int(prompt.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt.get("cache_write_tokens") or 0),
        },
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or inputs + outputs),
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


RESPONSES_COUNTS = ("input_tokens", "output_tokens")


def usage_from_responses(usage: Any) -> Usage | None:
    """Token counts of a Responses ``usage`` object, for pricing; None when it reports none
    (absent, null, counts null): unknown, which is not the same as free."""
    if not isinstance(usage, dict) or all(usage.get(k) is None for k in RESPONSES_COUNTS):
        return None
    details = usage.get("input_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )
