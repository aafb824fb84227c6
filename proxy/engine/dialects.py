"""Chaining client dialects and vendor wire formats.

A client speaks "openai" (``/v1/chat/completions``) or "anthropic" (``/v1/messages``); a vendor
speaks its wire format. Same format: pass-through, rewriting only the model (and, for OpenAI
streams, asking for usage). Different formats: the vendor module's pure translators.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.engine.route import Target
from proxy.providers.anthropic import request as anthropic_request
from proxy.providers.anthropic import response as anthropic_response
from proxy.providers.anthropic import stream as anthropic_stream
from proxy.providers.base import StreamTranslator

OPENAI = "openai"
ANTHROPIC = "anthropic"
JSON = dict[str, Any]


def upstream_body(dialect: str, body: JSON, raw: bytes, target: Target) -> tuple[bytes, list[str]]:
    """The bytes to send upstream and the names of parameters dropped on the way.

    Pass-through sends the client's own bytes when nothing changes (no re-serialising).
    """
    wire = target.vendor.wire
    upstream = target.upstream_model
    if dialect == wire:
        changed = dict(body) if body.get("model") != upstream else None
        if changed is not None:
            changed["model"] = upstream
        if wire == OPENAI and body.get("stream") and not wants_usage(body):
            changed = changed if changed is not None else dict(body)
            changed["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
        return (raw if changed is None else orjson.dumps(changed)), []
    if dialect == OPENAI and wire == ANTHROPIC:
        drop = target.model.drop_unsupported_params or target.provider.drop_unsupported_params
        out, dropped = anthropic_request.openai_to_anthropic(
            body,
            upstream_model=upstream,
            default_max_tokens=target.model.max_tokens,
            drop_unsupported=drop,
        )
        return orjson.dumps(out), dropped
    if dialect == ANTHROPIC and wire == OPENAI:
        out = anthropic_request.anthropic_to_openai(body, upstream_model=upstream)
        return orjson.dumps(out), []
    raise ValueError(f"no translation from {dialect} to {wire}")


def client_response(dialect: str, wire: str, response: JSON, created: int) -> JSON:
    """An upstream response in the client's dialect."""
    if dialect == wire:
        return response
    if dialect == OPENAI and wire == ANTHROPIC:
        return anthropic_response.anthropic_to_openai_response(response, created=created)
    if dialect == ANTHROPIC and wire == OPENAI:
        return anthropic_response.openai_to_anthropic_response(response)
    raise ValueError(f"no translation from {wire} to {dialect}")


def stream_translator(dialect: str, wire: str, created: int, model: str) -> StreamTranslator | None:
    """A stateful event translator, or None for a pass-through stream."""
    if dialect == wire:
        return None
    if dialect == OPENAI and wire == ANTHROPIC:
        return anthropic_stream.AnthropicToOpenAIStream(created=created)
    if dialect == ANTHROPIC and wire == OPENAI:
        return anthropic_stream.OpenAIToAnthropicStream(model=model)
    raise ValueError(f"no stream translation from {wire} to {dialect}")


def wants_usage(body: JSON) -> bool:
    """Did an OpenAI-dialect client ask for the final usage chunk?"""
    options = body.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))
