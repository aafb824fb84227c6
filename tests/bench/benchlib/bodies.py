"""Canned vendor responses and the benchmark's request bodies, byte-exact vendor shapes.

The fake upstream answers every request with one of four pre-built bodies, so it costs almost
nothing per request and is never the bottleneck. Shapes follow the vendor kit's samples
(``shared/vendor/samples``): OpenAI pretty-prints ``chat.completion`` with two spaces,
Anthropic sends compact JSON; streams are ``data:`` lines (OpenAI) or named events
(Anthropic), blank-line separated. The text is plain ASCII words so the bodies embed in an
nginx config string without escaping surprises.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

STREAM_CHUNKS = 50
OPENAI_ID = "chatcmpl-CXw3Pd0Jk2Mn5Bq8Rs1Tv4Wx7Yz"
ANTHROPIC_ID = "msg_014p7gG3wDgGV9EUtLvnow3U"
OPENAI_MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
CREATED = 1764061260

_SENTENCE = (
    "light rain is expected in Paris until the early afternoon so take an umbrella and a warm "
    "coat because the wind will pick up along the river later today"
)
_WORDS = tuple(_SENTENCE.split())

# Paths the fake upstream serves; a "stream" provider points its base_url under /stream.
ROUTES = {
    "/v1/chat/completions": ("openai_response.json", "application/json"),
    "/v1/messages": ("anthropic_response.json", "application/json"),
    "/stream/v1/chat/completions": ("openai_stream.sse", "text/event-stream; charset=utf-8"),
    "/stream/v1/messages": ("anthropic_stream.sse", "text/event-stream; charset=utf-8"),
    "/v1/models": ("models.json", "application/json"),
    "/v1/responses": ("openai_responses.json", "application/json"),
    "/v2/chat": ("cohere_response.json", "application/json"),
    "/stream/v2/chat": ("cohere_stream.sse", "text/event-stream; charset=utf-8"),
}


def _text(n_words: int) -> str:
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n_words))


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def openai_response() -> bytes:
    """A ~1 KB ``chat.completion``, pretty-printed as OpenAI sends it."""
    body = {
        "id": "chatcmpl-CXw1bq9TQm8bVu2cVhY4aK6nR1sLz",
        "object": "chat.completion",
        "created": CREATED,
        "model": OPENAI_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": _text(55),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 61,
            "completion_tokens": 55,
            "total_tokens": 116,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_07871e2ad8",
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def openai_responses_response() -> bytes:
    """The same answer as a Responses API ``response`` object, pretty-printed like OpenAI's."""
    text = {"type": "output_text", "annotations": [], "logprobs": [], "text": _text(55)}
    body = {
        "id": "resp_68e1c2a4b5d08190a7f3c9e2d1b4a6f70c3e5d7b9a1f2e4c",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": "You are a concise travel assistant. Answer briefly.",
        "max_output_tokens": 256,
        "model": OPENAI_MODEL,
        "output": [
            {
                "id": "msg_68e1c2a5f0a481909b6d3e8c2a7f1b5d0c3e5d7b9a1f2e4c",
                "type": "message",
                "status": "completed",
                "content": [text],
                "role": "assistant",
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 0.2,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 61,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 55,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 116,
        },
        "metadata": {},
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def _anthropic_usage(output_tokens: int) -> dict:
    return {
        "input_tokens": 61,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_response() -> bytes:
    """A ~1 KB Anthropic ``Message`` with one text block, compact JSON."""
    body = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": _text(110)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(110),
    }
    return _compact(body).encode()


def _openai_chunk(delta: dict, finish: str | None, obfuscation: str) -> str:
    chunk = {
        "id": OPENAI_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": OPENAI_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_07871e2ad8",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
        "obfuscation": obfuscation,
    }
    return "data: " + _compact(chunk) + "\n\n"


def openai_stream(chunks: int = STREAM_CHUNKS) -> bytes:
    """Role chunk, ``chunks`` content deltas, finish chunk, usage chunk, ``[DONE]``."""
    parts = [_openai_chunk({"role": "assistant", "content": "", "refusal": None}, None, "Hh3")]
    for i in range(chunks):
        word = (" " if i else "") + _WORDS[i % len(_WORDS)]
        parts.append(_openai_chunk({"content": word}, None, "x" * (1 + i % 3)))
    parts.append(_openai_chunk({}, "stop", "N2"))
    usage = {
        "id": OPENAI_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": OPENAI_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_07871e2ad8",
        "choices": [],
        "usage": {
            "prompt_tokens": 61,
            "completion_tokens": chunks,
            "total_tokens": 61 + chunks,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }
    parts.append("data: " + _compact(usage) + "\n\n")
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def _event(payload: dict) -> str:
    return f"event: {payload['type']}\ndata: {_compact(payload)}\n\n"


def anthropic_stream(chunks: int = STREAM_CHUNKS) -> bytes:
    """``message_start``, one text block of ``chunks`` deltas, ``message_delta``, stop."""
    start = {
        "id": ANTHROPIC_ID,
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(1),
    }
    parts = [
        _event({"type": "message_start", "message": start}),
        _event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ),
        _event({"type": "ping"}),
    ]
    for i in range(chunks):
        word = (" " if i else "") + _WORDS[i % len(_WORDS)]
        delta = {"type": "text_delta", "text": word}
        parts.append(_event({"type": "content_block_delta", "index": 0, "delta": delta}))
    usage = {k: v for k, v in _anthropic_usage(chunks).items() if k in _DELTA_USAGE}
    parts += [
        _event({"type": "content_block_stop", "index": 0}),
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": usage,
            }
        ),
        _event({"type": "message_stop"}),
    ]
    return "".join(parts).encode()


_DELTA_USAGE = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def _cohere_usage(output_tokens: int, kind: type = int) -> dict:
    return {
        "billed_units": {"input_tokens": kind(61), "output_tokens": kind(output_tokens)},
        "tokens": {"input_tokens": kind(561), "output_tokens": kind(output_tokens + 2)},
        "cached_tokens": kind(0),
    }


def cohere_response() -> bytes:
    """A ~1 KB Cohere v2 ``ChatResponseV2`` with one text item, compact JSON."""
    body = {
        "id": "9e5f00aa-bf1e-481a-abe3-0eceac18c3ec",
        "message": {"role": "assistant", "content": [{"type": "text", "text": _text(110)}]},
        "finish_reason": "COMPLETE",
        "usage": _cohere_usage(110),
    }
    return _compact(body).encode()


def cohere_stream(chunks: int = STREAM_CHUNKS) -> bytes:
    """Cohere's named events: message-start, one text item of ``chunks`` deltas, message-end
    (usage as floats, as Cohere streams it), then ``data: [DONE]``."""
    start = {"type": "message-start", "id": "29f14a5a-11de-4cae-9800-25e4747408ea"}
    start["delta"] = {"message": {"role": "assistant"}}
    content_start = {"type": "content-start", "index": 0}
    content_start["delta"] = {"message": {"content": {"type": "text", "text": ""}}}
    parts = [_event(start), _event(content_start)]
    for i in range(chunks):
        word = (" " if i else "") + _WORDS[i % len(_WORDS)]
        delta = {"message": {"content": {"text": word}}}
        parts.append(_event({"type": "content-delta", "index": 0, "delta": delta}))
    end = {"finish_reason": "COMPLETE", "usage": _cohere_usage(chunks, float)}
    parts += [
        _event({"type": "content-end", "index": 0}),
        _event({"type": "message-end", "delta": end}),
        "data: [DONE]\n\n",
    ]
    return "".join(parts).encode()


def models_list() -> bytes:
    models = [{"id": OPENAI_MODEL, "object": "model", "created": CREATED, "owned_by": "system"}]
    return _compact({"object": "list", "data": models}).encode()


def responses() -> dict[str, bytes]:
    """File name -> canned upstream body."""
    return {
        "openai_response.json": openai_response(),
        "anthropic_response.json": anthropic_response(),
        "openai_stream.sse": openai_stream(),
        "anthropic_stream.sse": anthropic_stream(),
        "models.json": models_list(),
        "openai_responses.json": openai_responses_response(),
        "cohere_response.json": cohere_response(),
        "cohere_stream.sse": cohere_stream(),
    }


_QUESTION = (
    "I am visiting Paris tomorrow morning for a meeting near the river. "
    "Should I take an umbrella, and what should I wear?"
)


def _openai_request(model: str, **extra: object) -> dict:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise travel assistant. Answer briefly."},
            {"role": "user", "content": _QUESTION},
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        **extra,
    }


def _responses_request(model: str) -> dict:
    """The ``small`` question as a Responses API request."""
    return {
        "model": model,
        "instructions": "You are a concise travel assistant. Answer briefly.",
        "input": [{"role": "user", "content": _QUESTION}],
        "max_output_tokens": 256,
        "temperature": 0.2,
    }


def _anthropic_request(**extra: object) -> dict:
    return {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 256,
        "system": "You are a concise travel assistant. Answer briefly.",
        "messages": [{"role": "user", "content": _QUESTION}],
        "temperature": 0.2,
        **extra,
    }


def large_image_b64(size: int = 200 * 1024) -> str:
    """``size`` characters of base64: a PNG signature then deterministic noise."""
    raw_len = size * 3 // 4
    noise = random.Random(6).randbytes(raw_len - 8)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + noise).decode()


def requests() -> dict[str, bytes]:
    """Request-body file name -> body. Model names are the benchmark config's."""
    stream = {"stream": True, "stream_options": {"include_usage": True}}
    image = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + large_image_b64()},
            },
        ],
    }
    large = _openai_request("bench-small")
    large["messages"] = [large["messages"][0], image]
    bodies = {
        "small_openai.json": _openai_request("bench-small"),
        "small_claude.json": _openai_request("claude-bench"),
        "small_anthropic.json": _anthropic_request(),
        "stream_openai.json": _openai_request("bench-stream", **stream),
        "stream_claude.json": _openai_request("claude-stream", **stream),
        "stream_anthropic.json": _anthropic_request(stream=True),
        "large_openai.json": large,
        "small_responses.json": _responses_request("bench-small"),
    }
    return {name: _compact(body).encode() for name, body in bodies.items()}


def write_all(directory: Path) -> Path:
    """Write every canned response and request body under ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in {**responses(), **requests()}.items():
        (directory / name).write_bytes(data)
    return directory
