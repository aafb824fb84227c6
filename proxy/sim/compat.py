"""A fake OpenAI-compatible server (vLLM, Ollama, llama.cpp, DeepSeek...): OpenAI's wire with
the differences real ones have, each switchable in :class:`proxy.sim.app.SimConfig`.

Served under ``/compat/v1``. Ids are not ``chatcmpl-``; there is no ``created``,
``system_fingerprint`` or ``service_tier``; ``compat_key`` None accepts any caller (a local
server); ``compat_usage`` False never reports usage; ``compat_stream_options`` False refuses
a body with ``stream_options`` (as some servers do). A model whose id contains ``reasoner``
thinks aloud in ``reasoning_content`` first, as DeepSeek's and vLLM's reasoning models do.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.sim import openai, text
from proxy.sim.faults import Reply, error_reply
from proxy.sse import encode_data

NAME = "compat"
STREAM_ERROR_STATUS = 500
INVALID_JSON = openai.INVALID_JSON
MODELS = ("llama3.1:8b", "qwen2.5-7b-instruct", "deepseek-reasoner")
_DROPPED = ("created", "system_fingerprint", "service_tier", "obfuscation")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> Reply:
    return openai.bad_request(message, param, code)


def authorize(headers: Mapping[str, str], key: str | None) -> Reply | None:
    """No key configured: anyone may call (and nothing is checked); else ``Bearer KEY``."""
    if key is None or headers.get("authorization") == f"Bearer {key}":
        return None
    body = {"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": 401}}
    return error_reply(NAME, 401, body=body)


def models_reply(extra_models: frozenset[str]) -> Reply:
    data = [{"id": m, "object": "model", "owned_by": "local"} for m in (*MODELS, *extra_models)]
    return Reply(200, {"content-type": "application/json"}, orjson.dumps({"data": data}))


def reasoning_of(model: str, body: Mapping[str, Any]) -> str | None:
    """What a reasoning model thinks before answering (None for the others)."""
    if "reasoner" not in model:
        return None
    prompt = openai.parse_prompt(body["messages"], None)
    return f"The user wrote {text.count_tokens(prompt.last_user_text)} tokens; answer briefly."


def answer(
    body: Mapping[str, Any],
    *,
    n_chunks: int,
    extra_models: frozenset[str],
    usage: bool = True,
    stream_options: bool = True,
) -> Reply:
    """OpenAI's answer, as a compatible server words it."""
    if "stream_options" in body and not stream_options:
        message = "stream_options: Extra inputs are not permitted"
        body_ = {"error": {"message": message, "type": "BadRequestError", "code": 400}}
        return error_reply(NAME, 400, body=body_)
    model = str(body.get("model"))
    reply = openai.answer(body, n_chunks=n_chunks, extra_models=extra_models | set(MODELS))
    if reply.status != 200:
        return reply
    reasoning = reasoning_of(model, body)
    reply_id = secrets.token_hex(16)  # no chatcmpl- prefix
    headers = {"content-type": reply.headers["content-type"]}
    if reply.events is None:
        data = _reword(orjson.loads(reply.body), reply_id, usage)
        if reasoning is not None:
            data["choices"][0]["message"]["reasoning_content"] = reasoning
        return Reply(200, headers, orjson.dumps(data))
    events = [_reword_event(e, reply_id, usage) for e in reply.events]
    events = [e for e in events if e]
    if reasoning is not None:
        events[1:1] = [_reasoning_chunk(piece, reply_id, model) for piece in reasoning.split(" ")]
    return Reply(200, headers, events=events, error_event=reply.error_event)


def _reword(data: dict[str, Any], reply_id: str, usage: bool) -> dict[str, Any]:
    data["id"] = reply_id
    for key in _DROPPED:
        data.pop(key, None)
    for choice in data.get("choices") or ():
        if isinstance(choice.get("message"), dict):
            choice["message"].pop("annotations", None)
    if not usage:
        data.pop("usage", None)
    return data


def _reword_event(event: bytes, reply_id: str, usage: bool) -> bytes:
    if not event.startswith(b"data: {"):
        return event  # [DONE]
    data = orjson.loads(event[len(b"data: ") :])
    if not usage and not data.get("choices"):
        return b""  # the usage chunk: this server never sends one
    data = _reword(data, reply_id, usage)
    if not usage:
        data.pop("usage", None)
    return encode_data(data)


def _reasoning_chunk(piece: str, reply_id: str, model: str) -> bytes:
    choice = {"index": 0, "delta": {"reasoning_content": piece + " "}, "finish_reason": None}
    return encode_data({"id": reply_id, "object": "chat.completion.chunk", "model": model,
                        "choices": [choice]})  # fmt: skip
