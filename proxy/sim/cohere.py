"""The fake Cohere: v2 chat in Cohere's exact wire format, strict like the live API.

Shapes follow the vendor kit (``samples/cohere/chat.v2.response.json``, ``chat.v2.stream.sse``,
``errors/429.json``) and the schemas derived from Cohere's OpenAPI description
(``schemas/cohere/``). Unknown fields are a 422 ("unknown field"), the key must match
``Authorization: Bearer``, unknown models are 404. Usage reports ``billed_units`` apart from
``tokens``, which also counts prompt-template tokens (``TEMPLATE_TOKENS``), so tests can tell
which one a gateway prices; streamed counts are floats, as Cohere sends them. A reply quoting
tool results cites them (``citations`` with a tool source).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from proxy.sim import text
from proxy.sim.faults import JSON_TYPE, SSE_TYPE, Reply, error_reply
from proxy.sim.openai import SIM_PREFIX
from proxy.sim.text import Prompt, Tool, ToolChoice, Turn
from proxy.sse import encode_named

NAME = "cohere"
STREAM_ERROR_STATUS = 500
CHECK_API_KEY_PATH = "/v1/check-api-key"
INVALID_JSON = "invalid request: the request body is not valid JSON"
# Top-level properties of the derived v2 chat request schema; a unit test keeps them in step.
REQUEST_FIELDS = frozenset((
    "stream", "model", "messages", "tools", "strict_tools", "documents", "citation_options",
    "response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed",
    "frequency_penalty", "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking",
    "priority",
))  # fmt: skip
MODELS = frozenset((
    "command-a-03-2025", "command-a-vision-07-2025", "command-a-reasoning-08-2025",
    "command-a-translate-08-2025", "command-r7b-12-2024", "command-r-plus-08-2024",
    "command-r-08-2024", "command-r-plus", "command-r", "command-r-plus-04-2024",
    "command-r-03-2024", "command", "command-light",
))  # fmt: skip
FINISH = {
    "stop": "COMPLETE",
    "stop_sequence": "STOP_SEQUENCE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
}
TEMPLATE_TOKENS = 500
"""Prompt-template tokens Cohere counts in ``usage.tokens`` but does not bill."""
ARG_FRAGMENTS = 3


def _id() -> str:
    return str(uuid.uuid4())


def _headers(content_type: str) -> dict[str, str]:
    return {"content-type": content_type, "x-trial-endpoint-call-remaining": "999"}


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, message: str) -> Reply:
    return error_reply(NAME, status, body={"id": _id(), "message": message})


def bad_request(message: str, param: str | None = None) -> Reply:
    """Cohere answers 422 to a body that does not match its schema."""
    return _error(422, message)


def authorize(headers: Mapping[str, str], key: str | None) -> Reply | None:
    """``Authorization: Bearer <key>`` must match."""
    if key is None or headers.get("authorization") == f"Bearer {key}":
        return None
    return _error(401, "invalid api token")


def known_model(model: str, extra: frozenset[str]) -> bool:
    return model in MODELS or model in extra or model.startswith(SIM_PREFIX)


def check_api_key_reply() -> Reply:
    """POST /v1/check-api-key for a key that passed :func:`authorize`."""
    body = {"valid": True, "organization_id": "sim-org", "owner_id": "sim-owner"}
    return Reply(200, _headers(JSON_TYPE), orjson.dumps(body))


def models_reply(extra_models: frozenset[str]) -> Reply:
    """GET /v1/models in Cohere's list format (not routed: the path is OpenAI's here)."""
    models = [{"name": m, "endpoints": ["chat"]} for m in sorted(MODELS | extra_models)]
    return Reply(200, _headers(JSON_TYPE), orjson.dumps({"models": models}))


# --- request -> Prompt -------------------------------------------------------------------------


def _texts(content: Any) -> tuple[list[str], int]:
    """Texts and image count of a message's ``content`` (string or items)."""
    if isinstance(content, str):
        return [content], 0
    texts, images = [], 0
    for item in content or ():
        kind = item.get("type")
        if kind in ("text", "thinking"):
            texts.append(item[kind])
        elif kind == "document":
            texts.append(orjson.dumps(item["document"]).decode())
        else:
            images += 1
    return texts, images


def parse_prompt(messages: Sequence[Mapping[str, Any]], tools: Any) -> Prompt:
    system: list[str] = []
    texts: list[str] = []
    images, last_user = 0, ""
    for message in messages:
        role = message.get("role")
        parts, n = _texts(message.get("content"))
        images += n
        (system if role == "system" else texts).extend(parts)
        if role == "user":
            last_user = "\n".join(parts)
        if message.get("tool_plan"):
            texts.append(message["tool_plan"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            texts += [function.get("name", ""), function.get("arguments", "")]
    results = [r for _, r in tool_results(messages)]
    return Prompt(
        system=tuple(system),
        texts=tuple(texts),
        n_messages=len(messages),
        n_images=images,
        tools_json=orjson.dumps(tools) if tools else b"",
        last_role=str(messages[-1].get("role")) if messages else "user",
        last_user_text=last_user,
        tool_results=tuple(results),
    )


def tool_results(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(tool_call_id, text) of the tool messages ending the conversation."""
    out: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        out.insert(0, (message["tool_call_id"], "\n".join(_texts(message.get("content"))[0])))
    return out


def parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], ToolChoice]:
    tools = [
        Tool(t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or ()
    ]
    mode = {"REQUIRED": "any", "NONE": "none"}.get(body.get("tool_choice") or "", "auto")
    return tools, ToolChoice(mode)  # type: ignore[arg-type]


# --- Turn -> wire ------------------------------------------------------------------------------


def usage(turn: Turn, as_float: bool = False) -> dict[str, Any]:
    kind = float if as_float else int
    return {
        "billed_units": {
            "input_tokens": kind(turn.prompt_tokens),
            "output_tokens": kind(turn.completion_tokens),
        },
        "tokens": {
            "input_tokens": kind(turn.prompt_tokens + TEMPLATE_TOKENS),
            "output_tokens": kind(turn.completion_tokens + 2),
        },
        "cached_tokens": kind(0),
    }


def _tool_calls(turn: Turn) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{c.name}_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in turn.tool_calls
    ]


def citations(turn: Turn, results: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One citation per tool result the reply quotes, with the tool output as its source."""
    out = []
    for call_id, result in results:
        quoted = result[: text.TOOL_RESULT_CHARS]
        start = turn.text.find(quoted) if quoted else -1
        if start < 0:
            continue
        source = {"type": "tool", "id": f"{call_id}:0", "tool_output": {"text": result}}
        out.append(
            {
                "start": start,
                "end": start + len(quoted),
                "text": quoted,
                "sources": [source],
                "type": "TEXT_CONTENT",
            }
        )
    return out


def chat_response(turn: Turn, cited: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``ChatResponseV2`` shaped like the kit's sample."""
    message: dict[str, Any] = {"role": "assistant"}
    calls = _tool_calls(turn)
    if calls:
        if turn.text:
            message["tool_plan"] = turn.text
        message["tool_calls"] = calls
    else:
        message["content"] = [{"type": "text", "text": turn.text}]
    if cited:
        message["citations"] = cited
    return {
        "id": _id(),
        "message": message,
        "finish_reason": FINISH[turn.finish],
        "usage": usage(turn),
    }


def _event(data: dict[str, Any]) -> bytes:
    return encode_named(data["type"], data)


DONE = b"data: [DONE]\n\n"


def _delta(kind: str, message: dict[str, Any], index: int | None = None) -> bytes:
    data: dict[str, Any] = {"type": kind}
    if index is not None:
        data["index"] = index
    data["delta"] = {"message": message}
    return _event(data)


def stream_events(turn: Turn, cited: list[dict[str, Any]], *, n_chunks: int) -> list[bytes]:
    """message-start; tool-plan deltas and tool calls, or a text content block; citations;
    message-end with the finish reason and float usage; then ``data: [DONE]``."""
    full = chat_response(turn, cited)
    message = full["message"]
    events = [_event({"type": "message-start", "id": full["id"], **_start_delta()})]
    if message.get("tool_calls"):
        for piece in text.split_chunks(message.get("tool_plan") or "", n_chunks):
            events.append(_delta("tool-plan-delta", {"tool_plan": piece}))
        for i, call in enumerate(message["tool_calls"]):
            opener = {**call, "function": {**call["function"], "arguments": ""}}
            events.append(_delta("tool-call-start", {"tool_calls": opener}, i))
            for piece in text.split_chunks(call["function"]["arguments"], ARG_FRAGMENTS):
                fragment = {"tool_calls": {"function": {"arguments": piece}}}
                events.append(_delta("tool-call-delta", fragment, i))
            events.append(_event({"type": "tool-call-end", "index": i}))
    else:
        events.append(_delta("content-start", {"content": {"type": "text", "text": ""}}, 0))
        for piece in text.split_chunks(turn.text, n_chunks):
            events.append(_delta("content-delta", {"content": {"text": piece}}, 0))
        events.append(_event({"type": "content-end", "index": 0}))
    for i, citation in enumerate(cited):
        events.append(_delta("citation-start", {"citations": citation}, i))
        events.append(_event({"type": "citation-end", "index": i}))
    end = {"finish_reason": full["finish_reason"], "usage": usage(turn, as_float=True)}
    events.append(_event({"type": "message-end", "delta": end}))
    events.append(DONE)
    return events


def _start_delta() -> dict[str, Any]:
    return {"delta": {"message": {"role": "assistant"}}}


def stream_error_event() -> bytes:
    """A ``message-end`` whose ``delta.error`` says the generation failed."""
    delta = {"error": "internal server error, please try again", "finish_reason": "ERROR"}
    return _event({"type": "message-end", "delta": delta})


# --- the endpoint ------------------------------------------------------------------------------


def _check(body: Mapping[str, Any], extra_models: frozenset[str]) -> Reply | None:
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return _error(422, f"unknown field: parameter '{unknown[0]}' is not a valid field")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error(422, "invalid request: model must be a string")
    if not known_model(model, extra_models):
        return _error(
            404,
            f"model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model.",
        )
    return None


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """POST /v2/chat, after auth and (optional) schema validation."""
    rejected = _check(body, extra_models)
    if rejected is not None:
        return rejected
    try:
        messages = body["messages"]
        prompt = parse_prompt(messages, body.get("tools"))
        tools, choice = parse_tools(body)
        stops = body.get("stop_sequences") or ()
        turn = text.respond(prompt, tools, choice, body.get("max_tokens"), stops, preface=True)
        cited = citations(turn, tool_results(messages)) if not turn.tool_calls else []
    except (AttributeError, KeyError, TypeError) as exc:
        return bad_request(f"invalid request: {exc!r}")
    if not body.get("stream"):
        return Reply(200, _headers(JSON_TYPE), orjson.dumps(chat_response(turn, cited)))
    events = stream_events(turn, cited, n_chunks=n_chunks)
    headers = {**_headers(SSE_TYPE), "cache-control": "no-cache"}
    return Reply(200, headers, events=events, error_event=stream_error_event())
