"""The fake OpenAI's Responses API (``POST /v1/responses``), non-streaming and streaming.

Shapes follow the kit's ``schemas/openai/responses.*.schema.json`` and the recorded
``samples/openai/responses.stream.*.sse``. Like the live API it keeps state: a response made
with ``store`` (the default) can be continued with ``previous_response_id``; an unknown id is
a 400. Auth, model checks and errors are the fake OpenAI's own (:mod:`proxy.sim.openai`).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import cache
from typing import Any

import orjson

from proxy.sim import openai, text
from proxy.sim.faults import JSON_TYPE, SSE_TYPE, Reply, kit_dir
from proxy.sim.text import Prompt, Tool, ToolChoice, Turn
from proxy.sse import encode_named

NAME = openai.NAME  # errors and keys are the fake OpenAI's
SCHEMA = "openai-responses"
STREAM_ERROR_STATUS = openai.STREAM_ERROR_STATUS
INVALID_JSON = openai.INVALID_JSON
authorize, bad_request, models_reply = openai.authorize, openai.bad_request, openai.models_reply
STORED_MAX = 1000
_stored: OrderedDict[str, tuple[str, ...]] = OrderedDict()
"""Stored responses (id -> the conversation's texts), for ``previous_response_id``."""


@cache
def request_fields() -> frozenset[str]:
    """Top-level properties of ``CreateResponse`` (its allOf flattened), from the kit."""
    path = kit_dir() / "schemas/openai/responses.request.schema.json"
    if not path.is_file():
        return frozenset()
    schema = orjson.loads(path.read_bytes())
    names: set[str] = set()
    for part in schema.get("allOf", ()):
        target = schema["$defs"][part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
        for sub in (target, *target.get("allOf", ())):
            sub = schema["$defs"][sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
            names.update(sub.get("properties", {}))
    return frozenset(names)


def _texts(content: Any) -> tuple[list[str], int]:
    if isinstance(content, str):
        return [content], 0
    texts, images = [], 0
    for part in content or ():
        if part.get("type") in ("input_text", "output_text"):
            texts.append(part["text"])
        elif part.get("type") in ("input_image", "input_file"):
            images += 1
    return texts, images


def parse_prompt(body: Mapping[str, Any], history: tuple[str, ...]) -> Prompt:
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    system = [body["instructions"]] if body.get("instructions") else []
    texts, images, last_user, results = list(history), 0, "", []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            parts, n = _texts(item.get("content"))
            images += n
            (system if item.get("role") in ("system", "developer") else texts).extend(parts)
            last_user = "\n".join(parts) if item.get("role") == "user" else last_user
        elif kind == "function_call":
            texts += [item["name"], item["arguments"]]
        elif kind == "function_call_output":
            output = item["output"]
            texts.append(output if isinstance(output, str) else "".join(_texts(output)[0]))
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        output = item["output"]
        results.insert(0, output if isinstance(output, str) else "".join(_texts(output)[0]))
    tools = body.get("tools")
    return Prompt(
        system=tuple(system),
        texts=tuple(texts),
        n_messages=len(items) + len(history),
        n_images=images,
        tools_json=orjson.dumps(tools) if tools else b"",
        last_role="tool" if results else "user",
        last_user_text=last_user,
        tool_results=tuple(results),
    )


def parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], ToolChoice]:
    tools = [
        Tool(t["name"], t.get("parameters") or {})
        for t in body.get("tools") or ()
        if t.get("type") == "function"
    ]
    parallel = body.get("parallel_tool_calls") is not False
    choice = body.get("tool_choice")
    if choice in ("none", "required"):
        return tools, ToolChoice("none" if choice == "none" else "any", parallel=parallel)
    if isinstance(choice, dict) and choice.get("type") == "function":
        return tools, ToolChoice("named", choice["name"], parallel)
    return tools, ToolChoice("auto", parallel=parallel)


def _usage(turn: Turn, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": turn.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": turn.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
    }


def _output(turn: Turn, stem: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if turn.text or not turn.tool_calls:
        part = {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
        out.append(
            {"id": f"msg_{stem}", "type": "message", "status": "completed", "role": "assistant",
             "content": [part]}
        )  # fmt: skip
    for i, call in enumerate(turn.tool_calls):
        out.append(
            {"id": f"fc_{stem}{i}", "type": "function_call", "status": "completed",
             "call_id": f"call_{stem}{i}", "name": call.name, "arguments": call.arguments}
        )  # fmt: skip
    return out


def response(body: Mapping[str, Any], turn: Turn, model: str, stem: str, cached: int) -> dict:
    """A ``response`` object echoing the request's parameters, as the live API does."""
    incomplete = turn.finish == "length"
    return {
        "id": f"resp_{stem}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": _output(turn, stem),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "usage": _usage(turn, cached),
        "metadata": body.get("metadata") or {},
    }


def stream_events(final: dict[str, Any], n_chunks: int) -> list[bytes]:
    """The event sequence that builds ``final`` item by item, with sequence numbers."""
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append(encode_named(kind, {"type": kind, "sequence_number": len(events), **fields}))

    started = {**final, "status": "in_progress", "output": [], "usage": None}
    started["incomplete_details"] = None
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    for index, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})  # fmt: skip
            part = item["content"][0]
            emit("response.content_part.added", **where, content_index=0,
                 part={**part, "text": ""})  # fmt: skip
            for piece in text.split_chunks(part["text"], n_chunks):
                emit("response.output_text.delta", **where, content_index=0, delta=piece,
                     logprobs=[])  # fmt: skip
            emit("response.output_text.done", **where, content_index=0, text=part["text"],
                 logprobs=[])  # fmt: skip
            emit("response.content_part.done", **where, content_index=0, part=part)
        else:
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})  # fmt: skip
            for piece in text.split_chunks(item["arguments"], openai.ARG_FRAGMENTS):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit("response.function_call_arguments.done", **where, name=item["name"],
                 arguments=item["arguments"])  # fmt: skip
        emit("response.output_item.done", output_index=index, item=item)
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    emit(kind, response=final)
    return events


def stream_error_event() -> bytes:
    """A mid-stream failure as the live API sends it: an ``error`` event."""
    message = "The server had an error while processing your request."
    error = {"type": "server_error", "code": "server_error", "message": message, "param": None}
    event = {"type": "error", "sequence_number": 0, "code": "server_error", "message": message}
    return encode_named("error", {**event, "param": None, "error": error})


def _check(body: Mapping[str, Any], extra_models: frozenset[str]) -> Reply | None:
    fields = request_fields()
    unknown = sorted(set(body) - fields) if fields else []
    if unknown:
        return bad_request(f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return bad_request("Missing required parameter: 'model'.", "model")
    previous = body.get("previous_response_id")
    if previous is not None and previous not in _stored:
        return bad_request(
            f"Previous response with id '{previous}' not found.",
            "previous_response_id",
            "previous_response_not_found",
        )
    return None if openai.known_model(model, extra_models) else openai.not_found(model)


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """POST /v1/responses, after auth and schema validation."""
    rejected = _check(body, extra_models)
    if rejected is not None:
        return rejected
    history = _stored.get(body.get("previous_response_id") or "", ())
    try:
        prompt = parse_prompt(body, history)
        tools, choice = parse_tools(body)
        turn = text.respond(prompt, tools, choice, body.get("max_output_tokens"))
    except (AttributeError, KeyError, TypeError) as exc:
        return bad_request(f"Invalid request body: {exc!r}")
    cached = text.system_tokens(prompt) if any("cached" in s for s in prompt.system) else 0
    stem = secrets.token_hex(12)
    final = response(body, turn, openai.SNAPSHOTS.get(body["model"], body["model"]), stem, cached)
    if body.get("store", True):
        _stored[final["id"]] = (*prompt.texts, turn.text)
        while len(_stored) > STORED_MAX:
            _stored.popitem(last=False)
    if not body.get("stream"):
        return Reply(200, openai.sim_headers(JSON_TYPE), orjson.dumps(final))
    headers = {**openai.sim_headers(SSE_TYPE), "cache-control": "no-cache"}
    events = stream_events(final, n_chunks)
    return Reply(200, headers, events=events, error_event=stream_error_event())
