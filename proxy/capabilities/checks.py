"""Pre-flight checks (can this model serve this request?) and per-target body adjustments.

Both run before any upstream call. A refusal is a 400 ``invalid_request`` naming the
capability and the model; the attempt loop tries the model's fallbacks first. Adjustments are
lossless: ``max_tokens`` above ``max_output_tokens`` is clamped to it (the model could not
write more anyway), and an OpenAI-wire body is rewritten for the model's ``token_param`` and
``system_role``. A body needing neither is passed through untouched (no re-serialising).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.capabilities.model import FLAGS, UNKNOWN, Capabilities
from proxy.capabilities.needs import Needs
from proxy.config.snapshot import ModelConfig
from proxy.errors import ErrorType, GatewayError

_WHAT = {
    "tools": ("tools (function calling)", "tools"),
    "vision": ("image or document input", "messages"),
    "json_schema": ("response_format json_schema (structured output)", "response_format"),
    "streaming": ("streaming", "stream"),
    "system_prompt": ("a system prompt", "messages"),
    "reasoning": ("reasoning settings (reasoning_effort / thinking)", "reasoning_effort"),
}
_TOKEN_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")  # + Responses API


def refusal(model: ModelConfig, needs: Needs) -> tuple[str, GatewayError] | None:
    """The capability ``model`` lacks for ``needs`` and the error saying so; None if it can
    (or may: unknown never refuses)."""
    caps = model.capabilities
    if caps is UNKNOWN:
        return None
    for flag in FLAGS:
        if getattr(caps, flag) is False and getattr(needs, flag):
            what, param = _WHAT[flag]
            return flag, GatewayError(
                ErrorType.INVALID_REQUEST,
                f"The model '{model.name}' does not support {what} (capability '{flag}').",
                param=param,
                code="unsupported_capability",
            )
    window = caps.context_window
    if window is None:
        return None
    output = clamped(needs.max_tokens, caps) or 0
    estimate = needs.input_tokens
    if estimate + output > window:
        return "context_window", GatewayError(
            ErrorType.INVALID_REQUEST,
            f"The prompt (at least {estimate} tokens, estimated) plus max_tokens {output} "
            f"exceeds the context window of model '{model.name}' ({window} tokens; capability "
            "'context_window').",
            param="messages",
            code="context_length_exceeded",
        )
    return None


def clamped(max_tokens: int | None, caps: Capabilities) -> int | None:
    limit = caps.max_output_tokens
    return min(max_tokens, limit) if max_tokens is not None and limit is not None else max_tokens


def adjust(body: bytes, wire: str, model: ModelConfig, needs: Needs | None) -> bytes:
    """``body`` as ``model`` wants it on ``wire``: output limit clamped, OpenAI params adapted."""
    caps = model.capabilities
    limit = caps.max_output_tokens
    clamp = needs is not None and limit is not None and (needs.max_tokens or 0) > limit
    adapt = wire == "openai" and caps.adapts
    if not (clamp or adapt):
        return body
    data: dict[str, Any] = orjson.loads(body)
    if clamp:
        for key in _TOKEN_KEYS:
            value = data.get(key)
            if isinstance(value, int) and value > limit:  # type: ignore[operator]
                data[key] = limit
    if adapt:
        _adapt_openai(data, caps)
    return orjson.dumps(data)


def _adapt_openai(data: dict[str, Any], caps: Capabilities) -> None:
    """max_tokens -> max_completion_tokens; system -> developer (nothing is lost either way)."""
    if caps.token_param == "max_completion_tokens" and "max_tokens" in data:
        value = data.pop("max_tokens")
        data.setdefault("max_completion_tokens", value)
    if caps.system_role == "developer" and isinstance(data.get("messages"), list):
        data["messages"] = [
            {**m, "role": "developer"} if isinstance(m, dict) and m.get("role") == "system" else m
            for m in data["messages"]
        ]
