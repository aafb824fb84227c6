"""The fake Anthropic: Messages and model listing in Anthropic's exact wire format.

Shapes follow the vendor kit (``samples/anthropic/messages.response.tool_use.json``,
``messages.stream.tool_use.sse``, ``errors/*.json``). Auth accepts ``x-api-key`` (what
gateways send) or ``Authorization: Bearer`` (what current SDKs send); ``anthropic-version``
is required; unknown top-level fields are rejected as the live API does.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from proxy.sim import text
from proxy.sim.faults import JSON_TYPE, SSE_TYPE, Reply, error_parts, error_reply
from proxy.sim.openai import SIM_PREFIX
from proxy.sim.text import Prompt, Tool, ToolChoice, Turn
from proxy.sse import encode_named

NAME = "anthropic"
STREAM_ERROR_STATUS = 529
INVALID_JSON = "There was an error parsing the body of your request: invalid JSON."
# CreateMessageParams properties; a unit test keeps this in step with the kit's schema.
REQUEST_FIELDS = frozenset((
    "model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "cache_control", "container", "inference_geo", "output_config",
))  # fmt: skip
CATALOGUE: tuple[tuple[str, str, str], ...] = (
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-07-15T00:00:00Z"),
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
    ("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07T00:00:00Z"),
)
ALIASES = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
MODELS = frozenset(m for m, _, _ in CATALOGUE) | frozenset(ALIASES)
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}
ARG_FRAGMENTS = 3
ORGANIZATION = "0b3c6f2e-1a2b-4c5d-8e9f-0a1b2c3d4e5f"


def _headers(content_type: str) -> dict[str, str]:
    return {
        "content-type": content_type,
        "anthropic-organization-id": ORGANIZATION,
        "request-id": _id("req_011C"),
    }


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(11)


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, kind: str, message: str) -> Reply:
    request_id = _id("req_011C")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return error_reply(NAME, status, body=body, headers={"request-id": request_id})


def bad_request(message: str, param: str | None = None) -> Reply:
    return _error(400, "invalid_request_error", message)


def authorize(headers: Mapping[str, str], key: str | None) -> Reply | None:
    """``x-api-key`` or ``Authorization: Bearer`` must match; ``anthropic-version`` is required."""
    if key is not None:
        bearer = headers.get("authorization", "")
        given = headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)
        if given is None:
            return _error(401, "authentication_error", "x-api-key header is required")
        if given != key:
            return error_reply(NAME, 401)
    if "anthropic-version" not in headers:
        return bad_request("anthropic-version: header is required")
    return None


def not_found(model: str) -> Reply:
    _, body = error_parts(NAME, 404)
    body["error"]["message"] = f"model: {model}"
    return error_reply(NAME, 404, body=body)


def known_model(model: str, extra: frozenset[str]) -> bool:
    return model in MODELS or model in extra or model.startswith(SIM_PREFIX)


# --- request -> Prompt -------------------------------------------------------------------------


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _read_block(block: Mapping[str, Any], texts: list[str], results: list[str]) -> int:
    """Append a block's texts (a tool result's to ``results``); returns its image count."""
    kind = block.get("type")
    if kind == "text":
        texts.append(block["text"])
    elif kind == "thinking":
        texts.append(block["thinking"])
    elif kind == "tool_use":
        texts += [block["name"], orjson.dumps(block.get("input") or {}).decode()]
    elif kind == "tool_result":
        inner: list[str] = []
        images = sum(_read_block(b, inner, []) for b in _blocks(block.get("content") or []))
        results.append("\n".join(inner))
        return images
    elif kind in ("image", "document"):
        return 1
    return 0


def parse_prompt(system: Any, messages: Sequence[Mapping[str, Any]], tools: Any) -> Prompt:
    system_texts = [b["text"] for b in _blocks(system or []) if b.get("type") == "text"]
    texts: list[str] = []
    images = 0
    last_user = ""
    results: list[str] = []
    for message in messages:
        results = []
        own: list[str] = []
        for block in _blocks(message["content"]):
            images += _read_block(block, own, results)
        texts += own + results
        if message.get("role") == "user" and own:
            last_user = "\n".join(own)
    last_role = str(messages[-1].get("role")) if messages else "user"
    return Prompt(
        system=tuple(system_texts),
        texts=tuple(texts),
        n_messages=len(messages) + (1 if system_texts else 0),
        n_images=images,
        tools_json=orjson.dumps(tools) if tools else b"",
        last_role=last_role,
        last_user_text=last_user,
        tool_results=tuple(results) if last_role == "user" else (),
    )


def parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], ToolChoice]:
    """Client tools (those with an ``input_schema``); server tools are not called."""
    tools = [
        Tool(t["name"], t["input_schema"]) for t in body.get("tools") or () if "input_schema" in t
    ]
    choice = body.get("tool_choice") or {"type": "auto"}
    parallel = not choice.get("disable_parallel_tool_use", False)
    kind = choice.get("type")
    if kind == "tool":
        return tools, ToolChoice("named", choice["name"], parallel)
    mode = {"any": "any", "none": "none"}.get(kind, "auto")
    return tools, ToolChoice(mode, parallel=parallel)  # type: ignore[arg-type]


def _has_cache_control(node: Any) -> bool:
    if isinstance(node, dict):
        return "cache_control" in node or any(_has_cache_control(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_cache_control(v) for v in node)
    return False


def cache_split(prompt: Prompt, body: Mapping[str, Any]) -> tuple[int, int]:
    """(cache_creation, cache_read): with ``cache_control`` anywhere the system prompt's
    tokens are a cache read, or a cache write when the system prompt says ``cache-write``."""
    if not prompt.system or not _has_cache_control(body):
        return 0, 0
    tokens = text.system_tokens(prompt)
    return (tokens, 0) if any("cache-write" in s for s in prompt.system) else (0, tokens)


# --- Turn -> wire ------------------------------------------------------------------------------


def usage(turn: Turn, cache: tuple[int, int], output_tokens: int | None = None) -> dict[str, Any]:
    creation, read = cache
    return {
        "input_tokens": turn.prompt_tokens - creation - read,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": creation, "ephemeral_1h_input_tokens": 0},
        "output_tokens": turn.completion_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def content_blocks(turn: Turn) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.text or not turn.tool_calls:
        blocks.append({"type": "text", "text": turn.text})
    for call in turn.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": _id("toolu_01"),
                "name": call.name,
                "input": orjson.loads(call.arguments),
            }
        )
    return blocks


def message(turn: Turn, model: str, cache: tuple[int, int]) -> dict[str, Any]:
    """A ``Message`` shaped like the kit's sample."""
    return {
        "id": _id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(turn),
        "stop_reason": STOP_REASONS[turn.finish],
        "stop_sequence": turn.stop_sequence,
        "usage": usage(turn, cache),
    }


def _block_events(index: int, block: dict[str, Any], n_chunks: int) -> list[bytes]:
    if block["type"] == "text":
        start = {**block, "text": ""}
        deltas = [
            {"type": "text_delta", "text": p} for p in text.split_chunks(block["text"], n_chunks)
        ]
    else:
        start = {**block, "input": {}}
        args = orjson.dumps(block["input"]).decode()
        pieces = ["", *text.split_chunks(args, ARG_FRAGMENTS)]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    events = [_event({"type": "content_block_start", "index": index, "content_block": start})]
    events += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    events.append(_event({"type": "content_block_stop", "index": index}))
    return events


def _event(data: dict[str, Any]) -> bytes:
    return encode_named(data["type"], data)


PING = _event({"type": "ping"})
MESSAGE_STOP = _event({"type": "message_stop"})


def stream_events(turn: Turn, model: str, cache: tuple[int, int], *, n_chunks: int) -> list[bytes]:
    """message_start, per block start/deltas/stop (a ping after the first start),
    message_delta with the stop reason and cumulative usage, message_stop."""
    full = message(turn, model, cache)
    start = {**full, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage(turn, cache, output_tokens=1)
    events = [_event({"type": "message_start", "message": start})]
    for index, block in enumerate(full["content"]):
        block_events = _block_events(index, block, n_chunks)
        if index == 0:
            block_events.insert(1, PING)
        events += block_events
    final_usage = {
        k: v for k, v in full["usage"].items() if k not in ("cache_creation", "service_tier")
    }
    delta = {"stop_reason": full["stop_reason"], "stop_sequence": full["stop_sequence"]}
    events.append(_event({"type": "message_delta", "delta": delta, "usage": final_usage}))
    events.append(MESSAGE_STOP)
    return events


def stream_error_event() -> bytes:
    """The ``event: error`` (overloaded) of ``samples/anthropic/messages.stream.error.sse``."""
    return _event(error_parts(NAME, 529)[1])


# --- the endpoint ------------------------------------------------------------------------------


def _check(body: Mapping[str, Any], extra_models: frozenset[str]) -> Reply | None:
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return bad_request(f"{unknown[0]}: Extra inputs are not permitted")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return bad_request(f"{name}: Field required")
    model = body["model"]
    if not isinstance(model, str):
        return bad_request("model: Input should be a valid string")
    return None if known_model(model, extra_models) else not_found(model)


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """POST /v1/messages, after auth and (optional) schema validation."""
    rejected = _check(body, extra_models)
    if rejected is not None:
        return rejected
    try:
        prompt = parse_prompt(body.get("system"), body["messages"], body.get("tools"))
        tools, choice = parse_tools(body)
        stops = body.get("stop_sequences") or ()
        turn = text.respond(prompt, tools, choice, body["max_tokens"], stops, preface=True)
    except (AttributeError, KeyError, TypeError) as exc:
        return bad_request(f"Invalid request body: {exc!r}")
    cache = cache_split(prompt, body)
    model = ALIASES.get(body["model"], body["model"])
    if not body.get("stream"):
        return Reply(200, _headers(JSON_TYPE), orjson.dumps(message(turn, model, cache)))
    events = stream_events(turn, model, cache, n_chunks=n_chunks)
    headers = {**_headers(SSE_TYPE), "cache-control": "no-cache"}
    return Reply(200, headers, events=events, error_event=stream_error_event())


def models_reply(extra_models: frozenset[str]) -> Reply:
    """GET /v1/models in Anthropic's list format (newest first, one page)."""
    extra = [(m, m, "2025-01-01T00:00:00Z") for m in sorted(extra_models - MODELS)]
    data = [
        {"type": "model", "id": m, "display_name": name, "created_at": created}
        for m, name, created in (*CATALOGUE, *extra)
    ]
    page = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return Reply(200, _headers(JSON_TYPE), orjson.dumps(page))
