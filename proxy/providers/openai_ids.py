"""Tool-call ids that OpenAI's Chat Completions accepts, whoever made them.

OpenAI refuses a request whose ``tool_calls[].id`` is longer than 40 characters (400
``string_above_max_length``). Ids made for other vendors can be longer: the gateway's Gemini
ids carry a thought signature, and clients or other gateways make their own. A conversation
that moves to an OpenAI-wire model (a fallback, an app switching models) would then fail on
its history. Such ids are replaced, in the upstream request only, by a short one derived from
the whole id, so a call and its result still match and the same history always gives the same
ids. The client keeps its own ids: the answer carries OpenAI's new calls, never these.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

MAX_ID = 40
SHORT_PREFIX = "call_"


def short_id(call_id: str) -> str:
    """A 29-character id for ``call_id``: 144 bits of BLAKE2b, base64url."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=18).digest()
    return SHORT_PREFIX + base64.urlsafe_b64encode(digest).decode()


def fit_tool_call_ids(messages: Any) -> list[Any] | None:
    """``messages`` with every tool-call id (an assistant's ``tool_calls[].id``, a tool
    message's ``tool_call_id``) longer than OpenAI accepts replaced by :func:`short_id`, or
    None when none is too long (the common case: nothing copied)."""
    if type(messages) is not list:
        return None
    for message in messages:  # the hot path: two key tests for a message without tools
        if (
            type(message) is dict
            and ("tool_calls" in message or "tool_call_id" in message)
            and _too_long(message)
        ):
            return [_fitted(m) if _too_long(m) else m for m in messages]
    return None


def _too_long(message: Any) -> bool:
    if type(message) is not dict:
        return False
    ref = message.get("tool_call_id")
    if type(ref) is str and len(ref) > MAX_ID:
        return True
    calls = message.get("tool_calls")
    if type(calls) is not list:
        return False
    for call in calls:
        call_id = call.get("id") if type(call) is dict else None
        if type(call_id) is str and len(call_id) > MAX_ID:
            return True
    return False


def _fitted(message: dict[str, Any]) -> dict[str, Any]:
    out = dict(message)
    ref = out.get("tool_call_id")
    if type(ref) is str and len(ref) > MAX_ID:
        out["tool_call_id"] = short_id(ref)
    calls = out.get("tool_calls")
    if type(calls) is list:
        out["tool_calls"] = [_fitted_call(call) for call in calls]
    return out


def _fitted_call(call: Any) -> Any:
    call_id = call.get("id") if type(call) is dict else None
    if type(call_id) is str and len(call_id) > MAX_ID:
        return {**call, "id": short_id(call_id)}
    return call
