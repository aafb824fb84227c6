"""Gemini ``GenerateContentResponse`` as a unified ``chat.completion`` (MAPPING §7).

Decisions: a prompt Gemini blocked (HTTP 200, no candidates, ``promptFeedback.blockReason``)
is a 400 ``invalid_request`` naming the reason, never a 200 with empty text. Thought-summary
parts (``thought: true``) are the model's reasoning, not its answer: left out of ``content``.
Usage: ``promptTokenCount`` already counts cached tokens; tool-use prompt tokens are billed as
input, so they join ``prompt_tokens``; thoughts are billed as output, so they join
``completion_tokens`` (and ``reasoning_tokens``). The stream translator reuses these helpers.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from proxy.errors import invalid_request
from proxy.pricing import unknown_usage
from proxy.providers.gemini import ids

JSON = dict[str, Any]
log = logging.getLogger("llm_edge_agent")

FINISH_REASON = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
}


def finish_reason(reason: Any, has_calls: bool) -> str:
    """Gemini ``finishReason`` -> OpenAI ``finish_reason``; calls make a STOP ``tool_calls``."""
    mapped = FINISH_REASON.get(str(reason))
    if mapped is None:
        log.info("gemini finishReason %s read as stop", reason)
        mapped = "stop"
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def check_blocked(response: JSON) -> None:
    """Raise ``invalid_request`` for a prompt Gemini refused to answer."""
    feedback = response.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        message = feedback.get("blockReasonMessage") or ""
        detail = f": {message}" if message else ""
        raise invalid_request(f"Gemini blocked the prompt (blockReason {reason}){detail}.")


def unified_usage(metadata: Any) -> JSON:
    """``usageMetadata`` as an OpenAI ``usage`` object; every count unknown (None) when Gemini
    reported none, which is not the same as free."""
    meta = metadata if isinstance(metadata, dict) else {}
    prompt = meta.get("promptTokenCount")
    output = meta.get("candidatesTokenCount")
    total = meta.get("totalTokenCount")
    if prompt is None and output is None and total is None:
        return unknown_usage("openai")
    prompt = int(prompt or 0)
    tool_use = meta.get("toolUsePromptTokenCount")
    if tool_use:
        prompt += int(tool_use)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(output or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(total or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def split_parts(
    parts: Any, seed: tuple[str, int], first_call: int = 0, stem: str = ""
) -> tuple[str, list[JSON], str]:
    """(answer text, tool calls, id stem) of a candidate's parts. ``seed`` (response id,
    candidate index) and the first call make the stem of synthesized ids, computed at the first
    call unless given (a stream passes the stem of its earlier events); ``first_call`` numbers
    the calls."""
    if isinstance(parts, list) and len(parts) == 1:  # the common answer: one text part
        part = parts[0]
        text = part.get("text") if isinstance(part, dict) else None
        if isinstance(text, str) and not part.get("thought"):
            return text, [], stem
    texts: list[str] = []
    calls: list[JSON] = []
    number = first_call
    for part in parts if isinstance(parts, list) else []:
        call = part.get("functionCall") if isinstance(part, dict) else None
        if not isinstance(call, dict):
            text = part.get("text") if call is None and isinstance(part, dict) else None
            if isinstance(text, str) and not part.get("thought"):  # thoughts are not the answer
                texts.append(text)
            continue
        name = call.get("name") or ""
        arguments = orjson.dumps(call.get("args") or {})
        gemini_id = call.get("id")
        if gemini_id:
            call_id = ids.GEMINI_ID + gemini_id
        else:  # the stem made once, at the first call that needs it
            stem = stem or ids.stem(seed, name, arguments)
            call_id = f"{stem}{number}"
        signature = part.get("thoughtSignature")
        if signature:
            call_id += ids.pack(signature)
        number += 1
        function = {"name": name, "arguments": arguments.decode()}
        calls.append({"id": call_id, "type": "function", "function": function})
    return "".join(texts), calls, stem


def gemini_to_unified(response: JSON, created: int) -> JSON:
    candidates = response.get("candidates")
    if not candidates:
        check_blocked(response)
    response_id = str(response.get("responseId") or "")
    choices = []
    for position, candidate in enumerate(candidates or []):
        index = candidate.get("index", position)
        content = candidate.get("content") or {}
        text, calls, _stem = split_parts(content.get("parts"), (response_id, index))
        message: JSON = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        reason = finish_reason(candidate.get("finishReason", "STOP"), bool(calls))
        choices.append({"index": index, "message": message, "finish_reason": reason})
    return {
        "id": f"chatcmpl-{response_id}" if response_id else "chatcmpl-gemini",
        "object": "chat.completion",
        "created": created,
        "model": str(response.get("modelVersion") or ""),
        "choices": choices,
        "usage": unified_usage(response.get("usageMetadata")),
    }
