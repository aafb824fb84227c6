"""Stream translators on the kit's recorded streams: schema-valid events, reassembled content,
indices, finish reasons and usage; then the real vendor SDKs parse what comes out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.providers.anthropic.stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from proxy.sse import DONE, encode_data, encode_named, iter_events
from tests.kit import KIT

CHUNK = Draft202012Validator(
    json.loads((KIT / "schemas/openai/chat.completions.chunk.schema.json").read_text())
)
EVENT = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/stream/stream-event.schema.json").read_text())
)
CREATED = 1764061260
Events = list[tuple[str | None, dict[str, Any]]]


def recorded(path: str) -> Events:
    """A kit SSE file as (name, payload) pairs, ``[DONE]`` as (None, None)-free end marker."""
    out: Events = []
    for event in iter_events((KIT / "samples" / path).read_bytes()):
        if event.data != b"[DONE]":
            out.append((event.name, orjson.loads(event.data)))
    return out


def run(translator: Any, events: Events) -> Events:
    out: Events = []
    for name, payload in events:
        out += translator.feed(name, payload)
    return out + translator.finish()


def to_openai(events: Events) -> tuple[list[dict[str, Any]], AnthropicToOpenAIStream]:
    translator = AnthropicToOpenAIStream(created=CREATED)
    out = run(translator, events)
    assert all(name is None for name, _ in out)
    chunks = [payload for _, payload in out]
    for chunk in chunks:
        if "error" not in chunk:
            CHUNK.validate(chunk)
    return chunks, translator


def to_anthropic(events: Events) -> tuple[Events, OpenAIToAnthropicStream]:
    translator = OpenAIToAnthropicStream(model="gpt-4o")
    out = run(translator, events)
    for name, payload in out:
        EVENT.validate(payload)
        assert name == payload["type"]
    return out, translator


# -- Anthropic upstream -> OpenAI client ---------------------------------------------------


def test_tool_use_stream_to_openai_chunks() -> None:
    chunks, translator = to_openai(recorded("anthropic/messages.stream.tool_use.sse"))
    assert translator.done
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in chunks} == {
        (
            "msg_014p7gG3wDgGV9EUtLvnow3U",
            "chat.completion.chunk",
            CREATED,
            "claude-sonnet-4-5-20250929",
        )
    }
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert (
        "".join(d.get("content") or "" for d in deltas) == "Okay, let's check the weather in Paris."
    )
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        for call in delta.get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"id": call.get("id"), "arguments": ""})
            entry["name"] = call["function"].get("name") or entry.get("name", "")
            entry["arguments"] += call["function"]["arguments"]
    assert sorted(calls) == [0, 1]  # counted over tool blocks, not Anthropic's block index
    assert [(calls[i]["id"], calls[i]["name"]) for i in (0, 1)] == [
        ("toolu_01D7FLrfh4GYq7yT1ULFeyMV", "get_weather"),
        ("toolu_01KcX9pR3mWq8ZtY6vN2sB4h", "get_local_time"),
    ]
    assert json.loads(calls[0]["arguments"]) == {"location": "Paris, France", "unit": "celsius"}
    assert json.loads(calls[1]["arguments"]) == {"timezone": "Europe/Paris"}
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 472 + 1210,
        "completion_tokens": 89,
        "total_tokens": 472 + 1210 + 89,
        "prompt_tokens_details": {"cached_tokens": 1210, "cache_write_tokens": 0},
    }


def test_each_text_delta_is_forwarded_at_once() -> None:
    translator = AnthropicToOpenAIStream(created=CREATED)
    events = recorded("anthropic/messages.stream.tool_use.sse")
    for name, payload in events:
        out = translator.feed(name, payload)
        if payload.get("delta", {}).get("type") == "text_delta":
            assert [c["choices"][0]["delta"] for _, c in out] == [
                {"content": payload["delta"]["text"]}
            ]
        if payload["type"] in ("ping", "content_block_stop", "message_stop"):
            assert out == []


def test_anthropic_stream_error_becomes_an_openai_error_chunk() -> None:
    chunks, translator = to_openai(recorded("anthropic/messages.stream.error.sse"))
    assert translator.done
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "Light"
    assert chunks[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "provider_error",
            "code": "provider_error",
            "param": None,
        }
    }


def test_cut_anthropic_stream_is_not_done() -> None:
    events = recorded("anthropic/messages.stream.tool_use.sse")[:-3]  # before message_delta
    chunks, translator = to_openai(events)
    assert not translator.done
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_thinking_and_unknown_events_are_skipped() -> None:
    start = recorded("anthropic/messages.stream.tool_use.sse")[0]
    events: Events = [
        start,
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "s"},
            },
        ),
        ("brand_new_event", {"type": "brand_new_event"}),
    ]
    chunks, _ = to_openai(events)
    assert len(chunks) == 1  # just the role chunk


# -- OpenAI upstream -> Anthropic client ---------------------------------------------------


def test_tool_call_stream_to_anthropic_events() -> None:
    events = recorded("openai/chat.stream.tool_call.sse")
    translator = OpenAIToAnthropicStream(model="gpt-4o")
    out: Events = []
    for name, payload in events:
        emitted = translator.feed(name, payload)
        if payload.get("choices") and payload["choices"][0]["finish_reason"]:
            # message_delta waits for the usage chunk that OpenAI sends after this one
            assert [n for n, _ in emitted] == ["content_block_stop"]
        out += emitted
    assert translator.done and translator.finish() == []
    for _, payload in out:
        EVENT.validate(payload)
    names = [n for n, _ in out]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    blocks = reassemble(out)
    assert [(b["type"], b["id"], b["name"]) for b in blocks] == [
        ("tool_use", "call_8wKm3Qp1ZsT7uVx2Yb4Nc6Dd", "get_weather"),
        ("tool_use", "call_Hq5Lr9Jt2Wm7Xe1Pa3Sv8Kb0", "get_local_time"),
    ]
    assert [b["input"] for b in blocks] == [
        {"location": "Paris, France", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    delta = out[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 161,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens": 49,
    }


def reassemble(events: Events) -> list[dict[str, Any]]:
    """Content blocks the way Anthropic's docs say to: concatenate, parse JSON at stop."""
    blocks: dict[int, dict[str, Any]] = {}
    open_blocks: set[int] = set()
    for name, payload in events:
        if name == "content_block_start":
            assert not open_blocks, "one block at a time"
            blocks[payload["index"]] = {**payload["content_block"], "json": ""}
            open_blocks.add(payload["index"])
        elif name == "content_block_delta":
            assert payload["index"] in open_blocks
            block, delta = blocks[payload["index"]], payload["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["json"] += delta["partial_json"]
        elif name == "content_block_stop":
            open_blocks.remove(payload["index"])
            block = blocks[payload["index"]]
            if block["type"] == "tool_use":
                block["input"] = json.loads(block["json"] or "{}")
    assert not open_blocks
    assert sorted(blocks) == list(range(len(blocks)))
    return [{k: v for k, v in blocks[i].items() if k != "json"} for i in sorted(blocks)]


def test_text_stream_to_anthropic_events() -> None:
    out, translator = to_anthropic(recorded("openai/chat.stream.text.sse"))
    assert translator.done
    start = out[0][1]["message"]
    assert (start["id"], start["model"], start["usage"]["input_tokens"]) == (
        "chatcmpl-CXw3Pd0Jk2Mn5Bq8Rs1Tv4Wx7Yz",
        "gpt-4o",
        0,
    )
    assert reassemble(out) == [
        {"type": "text", "text": "Yes — light rain is expected in Paris until noon."}
    ]
    assert out[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert out[-2][1]["usage"]["input_tokens"] == 233


def test_openai_stream_error_becomes_an_anthropic_error_event() -> None:
    out, translator = to_anthropic(recorded("openai/chat.stream.error.sse"))
    assert translator.done
    assert out[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The server had an error while processing your request. "
                "Sorry about that!",
            },
        },
    )


def test_done_without_usage_closes_the_message_with_unknown_usage() -> None:
    events = [e for e in recorded("openai/chat.stream.text.sse") if e[1]["choices"]]
    translator = OpenAIToAnthropicStream(model="gpt-4o")
    out = run(translator, events)  # run() calls finish(), as at [DONE]
    assert translator.done
    assert [n for n, _ in out[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    delta = out[-2][1]
    assert delta["usage"] == {"input_tokens": None, "output_tokens": None}  # unknown, not 0
    for _, payload in [*out[:-2], (None, {**delta, "usage": {"output_tokens": 0}}), out[-1]]:
        EVENT.validate(payload)  # all else is Anthropic's shape


def test_message_delta_without_usage_gives_an_unknown_usage_chunk() -> None:
    events = recorded("anthropic/messages.stream.tool_use.sse")
    events = [(n, {k: v for k, v in p.items() if k != "usage"}) for n, p in events]
    translator = AnthropicToOpenAIStream(created=CREATED)
    chunks = [payload for _, payload in run(translator, events)]
    assert translator.done
    assert chunks[-1]["choices"] == []  # message_start's partial counts are not the usage
    assert chunks[-1]["usage"] == {
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
    }


def test_text_block_closes_before_a_tool_block() -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "g"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return None, {**base, "choices": [choice]}

    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a"'},
    }
    events = [
        chunk({"role": "assistant", "content": "Let me"}),
        chunk({"content": " look."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
        (None, {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
    ]
    out, _ = to_anthropic(events)
    assert [n for n, _ in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    blocks = reassemble(out)
    assert blocks[0] == {"type": "text", "text": "Let me look."}
    assert blocks[1]["input"] == {"a": 1}


# -- the real SDKs parse what the translators emit -----------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """Answers any POST with the server's ``body`` as an SSE stream (HTTP/1.0: close ends it)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(self.server.body)  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadingHTTPServer]:
    """A loopback server replaying a stream, so the SDKs run with their own HTTP stack."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.body = b""  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def sse_client(cls: type, server: ThreadingHTTPServer, body: bytes, path: str = "") -> Any:
    server.body = body  # type: ignore[attr-defined]
    base_url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    return cls(api_key="test", base_url=base_url, max_retries=0)


def openai_sse(chunks: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(encode_data(c) for c in chunks) + DONE


def anthropic_sse(events: Events) -> bytes:
    return b"".join(encode_named(str(name), payload) for name, payload in events)


def test_openai_sdk_reads_the_translated_stream(upstream: ThreadingHTTPServer) -> None:
    chunks, _ = to_openai(recorded("anthropic/messages.stream.tool_use.sse"))
    client = sse_client(openai.OpenAI, upstream, openai_sse(chunks), "/v1")
    with client.chat.completions.stream(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Okay, let's check the weather in Paris."
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == [
        {"location": "Paris, France", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.prompt_tokens == 1682


def test_openai_sdk_raises_on_the_translated_error(upstream: ThreadingHTTPServer) -> None:
    chunks, _ = to_openai(recorded("anthropic/messages.stream.error.sse"))
    client = sse_client(openai.OpenAI, upstream, openai_sse(chunks), "/v1")
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


def test_anthropic_sdk_reads_the_translated_stream(upstream: ThreadingHTTPServer) -> None:
    events, _ = to_anthropic(recorded("openai/chat.stream.tool_call.sse"))
    client = sse_client(anthropic.Anthropic, upstream, anthropic_sse(events))
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [
        ("tool_use", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
        ("tool_use", "get_local_time", {"timezone": "Europe/Paris"}),
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (161, 49)


def test_anthropic_sdk_raises_on_the_translated_error(upstream: ThreadingHTTPServer) -> None:
    events, _ = to_anthropic(recorded("openai/chat.stream.error.sse"))
    client = sse_client(anthropic.Anthropic, upstream, anthropic_sse(events))
    with (
        pytest.raises(anthropic.APIError, match="Sorry about that"),
        client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
