"""The fake OpenAI: Chat Completions and model listing in OpenAI's exact wire format.

Shapes follow the vendor kit (``samples/openai/chat.response.tool_calls.json``,
``chat.stream.*.sse``, ``errors/*.json``). Like the live API it is strict: unknown
top-level arguments are rejected, unknown models are 404, the key must match.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from proxy.sim import text
from proxy.sim.faults import JSON_TYPE, SSE_TYPE, Reply, error_parts, error_reply
from proxy.sim.text import Prompt, Tool, ToolChoice, Turn
from proxy.sse import DONE, encode_data

NAME = "openai"
STREAM_ERROR_STATUS = 500
INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
# Top-level properties of CreateChatCompletionRequest (allOf/$ref flattened); a unit test
# keeps this in step with schemas/openai/chat.completions.request.schema.json.
REQUEST_FIELDS = frozenset((
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
    "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
    "verbosity", "web_search_options",
))  # fmt: skip
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4": "gpt-4-0613",
    "gpt-4-turbo": "gpt-4-turbo-2024-04-09",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o1": "o1-2024-12-17",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5.1": "gpt-5.1-2025-11-13",
    "gpt-5.2": "gpt-5.2-2025-12-11",
    "gpt-5.4-mini": "gpt-5.4-mini-2026-03-17",
    "gpt-5.4-nano": "gpt-5.4-nano-2026-03-17",
    "gpt-5.5": "gpt-5.5-2026-04-23",
}
UNDATED = ("gpt-5.4", "gpt-4o-2024-11-20", "gpt-4o-2024-05-13", "chatgpt-4o-latest")
MODELS: tuple[str, ...] = tuple(dict.fromkeys([*SNAPSHOTS, *SNAPSHOTS.values(), *UNDATED]))
_KNOWN = frozenset(MODELS)
SIM_PREFIX = "sim-"
"""Any model id with this prefix exists on both fake vendors (handy for tests)."""
FINGERPRINT = "fp_5im0000000"
MAX_TOOL_CALL_ID = 40  # not in OpenAI's published schema; the live API answers 400 above it
ARG_FRAGMENTS = 3
_OBFUSCATION = ("Qz", "k9L", "aB3x", "N2", "x")
_BASE_HEADERS = {"openai-version": "2020-10-01", "openai-processing-ms": "7"}
_RATE_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-tokens": "29999000",
    "x-ratelimit-reset-tokens": "2ms",
}


def _headers(content_type: str) -> dict[str, str]:
    return {
        "content-type": content_type,
        **_BASE_HEADERS,
        **_RATE_HEADERS,
        "x-request-id": "req_" + secrets.token_hex(16),
    }


sim_headers = _headers  # shared with the Responses API (proxy.sim.openai_responses)


def _id(prefix: str, n: int = 24) -> str:
    return prefix + secrets.token_hex(n // 2 + 1)[:n]


# --- errors ------------------------------------------------------------------------------------


def bad_request(message: str, param: str | None = None, code: str | None = None) -> Reply:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return error_reply(NAME, 400, body=body)


def authorize(headers: Mapping[str, str], key: str | None) -> Reply | None:
    """401 exactly like the kit's sample unless ``Authorization: Bearer <key>`` matches."""
    if key is None or headers.get("authorization") == f"Bearer {key}":
        return None
    return error_reply(NAME, 401)


def not_found(model: str) -> Reply:
    _, body = error_parts(NAME, 404)
    body["error"]["message"] = (
        f"The model `{model}` does not exist or you do not have access to it."
    )
    return error_reply(NAME, 404, body=body)


def known_model(model: str, extra: frozenset[str]) -> bool:
    return model in _KNOWN or model in extra or model.startswith(SIM_PREFIX)


# --- request -> Prompt -------------------------------------------------------------------------


def _content(content: Any) -> tuple[list[str], int]:
    """Texts and image/file count of a message's ``content`` (string or parts)."""
    if content is None:
        return [], 0
    if isinstance(content, str):
        return [content], 0
    texts, images = [], 0
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(part["refusal"])
        else:  # image_url, input_audio, file
            images += 1
    return texts, images


def parse_prompt(messages: Sequence[Mapping[str, Any]], tools: Any) -> Prompt:
    system: list[str] = []
    texts: list[str] = []
    images = 0
    last_user = ""
    for message in messages:
        role = message.get("role")
        parts, n = _content(message.get("content"))
        images += n
        (system if role in ("system", "developer") else texts).extend(parts)
        if role == "user":
            last_user = "\n".join(parts)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            texts += [function.get("name", ""), function.get("arguments", "")]
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, "\n".join(_content(message.get("content"))[0]))
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


def parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], ToolChoice]:
    tools = [
        Tool(t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or ()
        if t.get("type") == "function"
    ]
    parallel = body.get("parallel_tool_calls") is not False
    choice = body.get("tool_choice")
    if choice == "none":
        return tools, ToolChoice("none")
    if choice == "required":
        return tools, ToolChoice("any", parallel=parallel)
    if isinstance(choice, dict) and choice.get("type") == "function":
        return tools, ToolChoice("named", choice["function"]["name"], parallel)
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice["allowed_tools"]
        names = {t.get("function", {}).get("name") for t in allowed.get("tools", ())}
        mode = "any" if allowed.get("mode") == "required" else "auto"
        return [t for t in tools if t.name in names], ToolChoice(mode, parallel=parallel)
    return tools, ToolChoice("auto", parallel=parallel)


# --- Turn -> wire ------------------------------------------------------------------------------


def usage(turn: Turn, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def finish_reason(turn: Turn) -> str:
    return "stop" if turn.finish == "stop_sequence" else turn.finish


def _tool_calls(turn: Turn) -> list[dict[str, Any]]:
    return [
        {
            "id": _id("call_"),
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in turn.tool_calls
    ]


def completion(turn: Turn, model: str, cached: int) -> dict[str, Any]:
    """A ``chat.completion`` object shaped like the kit's sample."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text if turn.text or not turn.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if turn.tool_calls:
        message["tool_calls"] = _tool_calls(turn)
    return {
        "id": _id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(turn)}
        ],
        "usage": usage(turn, cached),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def stream_events(
    turn: Turn, model: str, cached: int, *, n_chunks: int, include_usage: bool, obfuscate: bool
) -> list[bytes]:
    """``data:`` chunks: role, content pieces, tool calls (opener, then argument fragments),
    the finish chunk, the usage chunk when asked for, then ``[DONE]``."""
    base = {
        "id": _id("chatcmpl-", 29),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    out: list[bytes] = []

    def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data: dict[str, Any] = {**base, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        if obfuscate:
            data["obfuscation"] = _OBFUSCATION[len(out) % len(_OBFUSCATION)]
        out.append(encode_data(data))

    calls = _tool_calls(turn)
    openers = [
        {"index": i, **call, "function": {**call["function"], "arguments": ""}}
        for i, call in enumerate(calls)
    ]
    if turn.text or not calls:
        chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in text.split_chunks(turn.text, n_chunks):
            chunk({"content": piece})
    else:
        chunk({"role": "assistant", "content": None, "tool_calls": [openers[0]], "refusal": None})
    for i, call in enumerate(calls):
        if i or turn.text:
            chunk({"tool_calls": [openers[i]]})
        for piece in text.split_chunks(call["function"]["arguments"], ARG_FRAGMENTS):
            chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    chunk({}, finish_reason(turn))
    if include_usage:
        out.append(encode_data({**base, "choices": [], "usage": usage(turn, cached)}))
    out.append(DONE)
    return out


def stream_error_event() -> bytes:
    """The mid-stream failure line of ``samples/openai/chat.stream.error.sse``."""
    return encode_data(error_parts(NAME, 500)[1])


# --- the endpoint ------------------------------------------------------------------------------


def _check(body: Mapping[str, Any], extra_models: frozenset[str]) -> Reply | None:
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return bad_request(f"Unrecognized request argument supplied: {unknown[0]}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return bad_request("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad_request(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if body.get("n") not in (None, 1):
        return bad_request("The simulator supports only n=1.", "n", "invalid_value")
    long_id = _long_tool_call_id(messages)
    if long_id is not None:
        where, length = long_id
        return bad_request(
            f"Invalid '{where}': string too long. Expected a string with maximum length "
            f"{MAX_TOOL_CALL_ID}, but got a string with length {length} instead.",
            where,
            "string_above_max_length",
        )
    return None if known_model(model, extra_models) else not_found(model)


def _long_tool_call_id(messages: Sequence[Any]) -> tuple[str, int] | None:
    """Where the live API's 40-character limit on an assistant's tool-call ids is broken."""
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            call_id = call.get("id") if isinstance(call, dict) else None
            if isinstance(call_id, str) and len(call_id) > MAX_TOOL_CALL_ID:
                return f"messages[{index}].tool_calls[{position}].id", len(call_id)
    return None


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """POST /v1/chat/completions, after auth and (optional) schema validation."""
    rejected = _check(body, extra_models)
    if rejected is not None:
        return rejected
    max_tokens = body.get("max_completion_tokens")
    max_tokens = body.get("max_tokens") if max_tokens is None else max_tokens
    stop = body.get("stop") or ()
    try:
        prompt = parse_prompt(body["messages"], body.get("tools") or body.get("functions"))
        tools, choice = parse_tools(body)
        stops = [stop] if isinstance(stop, str) else stop
        turn = text.respond(prompt, tools, choice, max_tokens, stops)
    except (AttributeError, KeyError, TypeError) as exc:
        return bad_request(f"Invalid request body: {exc!r}")
    cached = text.system_tokens(prompt) if any("cached" in s for s in prompt.system) else 0
    model = SNAPSHOTS.get(body["model"], body["model"])
    if not body.get("stream"):
        return Reply(200, _headers(JSON_TYPE), orjson.dumps(completion(turn, model, cached)))
    options = body.get("stream_options") or {}
    events = stream_events(
        turn,
        model,
        cached,
        n_chunks=n_chunks,
        include_usage=bool(options.get("include_usage")),
        obfuscate=options.get("include_obfuscation") is not False,
    )
    headers = {**_headers(SSE_TYPE), "cache-control": "no-cache"}
    return Reply(200, headers, events=events, error_event=stream_error_event())


def models_reply(extra_models: frozenset[str]) -> Reply:
    """GET /v1/models in OpenAI's list format."""
    ids = [*MODELS, *sorted(extra_models - _KNOWN)]
    data = [
        {"id": m, "object": "model", "created": 1_715_367_049, "owned_by": "system"} for m in ids
    ]
    return Reply(200, _headers(JSON_TYPE), orjson.dumps({"object": "list", "data": data}))
