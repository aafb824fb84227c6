"""The simulated upstream, driven by the official SDKs and a raw aiohttp client.

Whatever the sim sends must parse in the vendors' own SDKs and validate against the kit's
schemas, or every end-to-end test built on it proves nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web

from proxy.sim import BackgroundServer, Fault, Sim, SimConfig, create_app, free_port, text
from proxy.sim import anthropic as sim_anthropic
from proxy.sim import openai as sim_openai
from proxy.sim.text import Prompt, Tool, ToolChoice
from proxy.sse import iter_events
from tests.kit import SCHEMAS, assert_valid, sample

OPENAI_KEY = "sk-sim-test"
ANTHROPIC_KEY = "ak-sim-test"
REPO = Path(__file__).resolve().parents[2]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a place.",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "optional": {"type": "boolean"},
        },
        "required": ["location", "unit", "days"],
    },
}
TIME = {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
OA_TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]
AN_TOOLS = [{"name": t["name"], "input_schema": t["parameters"]} for t in (WEATHER, TIME)]


# --- fixtures and helpers ----------------------------------------------------------------------

_SIM = Sim(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(lambda: create_app(_SIM), shutdown_timeout=2) as srv:
        yield srv


@pytest.fixture
def sim(server: BackgroundServer) -> Sim:
    _SIM.faults.clear()
    _SIM.clear()
    _SIM.config = SimConfig(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    return _SIM


@pytest.fixture
def oai(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=OPENAI_KEY, max_retries=0)


@pytest.fixture
def claude(server: BackgroundServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=ANTHROPIC_KEY, max_retries=0)


@dataclass
class Raw:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None
    first_byte_s: float = 0.0
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw(
    server: BackgroundServer,
    path: str,
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 5,
) -> Raw:
    """One request with a plain aiohttp client; transport failures are captured, not raised."""

    async def go() -> Raw:
        out = Raw()
        start = time.monotonic()
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            try:
                method = "GET" if body is None else "POST"
                async with session.request(
                    method, server.url + path, json=body, headers=headers
                ) as resp:
                    out.status, out.headers = (
                        resp.status,
                        {k.lower(): v for k, v in resp.headers.items()},
                    )
                    out.first_byte_s = time.monotonic() - start
                    async for chunk in resp.content.iter_any():
                        out.body += chunk
            except (aiohttp.ClientError, TimeoutError) as exc:
                out.error = exc
        out.elapsed_s = time.monotonic() - start
        return out

    return asyncio.run(go())


def oa_headers(key: str = OPENAI_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def an_headers(key: str = ANTHROPIC_KEY) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


def oa_body(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def an_body(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}]
    return {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": messages, **extra}


def openai_chunks(body: bytes) -> list[dict[str, Any]]:
    events = list(iter_events(body))
    assert events[-1].data == b"[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    for chunk in chunks:
        assert_valid("openai/chat.completions.chunk.schema.json", chunk)
    return chunks


def anthropic_events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for event in iter_events(body):
        data = orjson.loads(event.data)
        assert event.name == data["type"]
        assert_valid("anthropic/stream/stream-event.schema.json", data)
        events.append(data)
    return events


# --- the model (pure) --------------------------------------------------------------------------


def test_tokenizer_and_chunks() -> None:
    assert text.count_tokens("Hello, world! It's 3pm.") == 9
    assert text.count_tokens("") == 0
    for n in (1, 2, 3, 7, 50, 1000):
        pieces = text.split_chunks("The quick brown fox.", n)
        assert "".join(pieces) == "The quick brown fox." and all(pieces)
        assert len(pieces) == min(n, 20)
    assert text.split_chunks("", 5) == []


def test_reply_is_deterministic_echoes_and_obeys_say() -> None:
    first = text.reply_text("What is the weather in Paris today please")
    assert first == text.reply_text("What is the weather in Paris today please")
    assert first.startswith("You said: What is the weather in Paris. ")
    assert first != text.reply_text("Something else entirely")
    assert text.reply_text("Please say: exactly this") == "exactly this"


def test_truncation_counts_exactly_and_stops_cut() -> None:
    cut, truncated = text.truncate_tokens("one, two three. four", 3)
    assert (cut, truncated) == ("one, two", True)
    assert text.count_tokens(cut) == 3
    assert text.truncate_tokens("one two", 5) == ("one two", False)
    assert text.apply_stop("alpha beta gamma", ["gamma", "beta"]) == ("alpha ", "beta")


def test_tool_arguments_follow_the_schema() -> None:
    assert text.arguments_for(WEATHER["parameters"]) == {
        "location": "sim",
        "unit": "celsius",
        "days": 1,
    }
    nested = {
        "type": "object",
        "required": ["o", "b", "n"],
        "properties": {
            "o": {"type": "object"},
            "b": {"type": "boolean"},
            "n": {"type": ["null", "number"]},
        },
    }
    assert text.arguments_for(nested) == {"o": {}, "b": True, "n": 1}


def test_tool_choice_rules() -> None:
    tools = [Tool("a", {}), Tool("b", {})]
    user = Prompt(last_user_text="do it in parallel")
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice())] == ["a", "b"]
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice(parallel=False))] == ["a"]
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice("named", "b"))] == ["b"]
    assert text.choose_tools(user, tools, ToolChoice("none")) == []
    after = Prompt(last_role="tool", tool_results=("sunny",))
    assert text.choose_tools(after, tools, ToolChoice("any")) == []
    assert "sunny" in text.respond(after, tools).text


def test_request_field_lists_match_the_kit_schemas() -> None:
    oa = orjson.loads((SCHEMAS / "openai/chat.completions.request.schema.json").read_bytes())

    def keys(node: dict[str, Any]) -> set[str]:
        if "$ref" in node:
            return keys(oa["$defs"][node["$ref"].rsplit("/", 1)[1]])
        return set(node.get("properties", {})).union(*(keys(n) for n in node.get("allOf", [])))

    assert keys(oa) == sim_openai.REQUEST_FIELDS
    an = orjson.loads((SCHEMAS / "anthropic/messages.request.schema.json").read_bytes())
    assert set(an["properties"]) == sim_anthropic.REQUEST_FIELDS


# --- OpenAI through its SDK --------------------------------------------------------------------


def test_openai_completion(sim: Sim, oai: openai.OpenAI) -> None:
    raw_resp = oai.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello there friend"}]
    )
    assert_valid("openai/chat.completions.response.schema.json", raw_resp.http_response.json())
    resp = raw_resp.parse()
    assert resp.model == "gpt-4o-2024-08-06"
    content = resp.choices[0].message.content
    assert content is not None and content.startswith("You said: hello there friend.")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == text.count_tokens(content)
    assert resp.usage.prompt_tokens == 3 + text.PER_MESSAGE_TOKENS
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    (record,) = sim.received
    assert record.json["messages"][0]["content"] == "hello there friend"
    assert record.headers["authorization"] == f"Bearer {OPENAI_KEY}" and record.status == 200
    assert not record.schema_errors and record.done and not record.disconnected


def test_openai_stream_with_usage(sim: Sim, server: BackgroundServer, oai: openai.OpenAI) -> None:
    body = oa_body("stream me", stream=True, stream_options={"include_usage": True})
    result = raw(server, "/v1/chat/completions", body, oa_headers())
    assert result.headers["content-type"].startswith("text/event-stream")
    chunks = openai_chunks(result.body)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert content == text.reply_text("stream me")
    assert chunks[-1]["usage"]["completion_tokens"] == text.count_tokens(content)
    assert len({c["id"] for c in chunks}) == 1

    stream = oai.chat.completions.create(**body)
    parsed = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == content
    assert parsed[-1].usage is not None and parsed[-1].usage.completion_tokens == text.count_tokens(
        content
    )


def test_openai_stream_without_usage_has_no_usage_field(sim: Sim, server: BackgroundServer) -> None:
    result = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    chunks = openai_chunks(result.body)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_calls(sim: Sim, oai: openai.OpenAI, server: BackgroundServer) -> None:
    messages = [{"role": "user", "content": "weather and time in parallel please"}]
    resp = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OA_TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert resp.choices[0].finish_reason == "tool_calls" and resp.choices[0].message.content is None
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {
        "location": "sim",
        "unit": "celsius",
        "days": 1,
    }
    args_tokens = sum(text.count_tokens(c.function.arguments) for c in calls)
    assert resp.usage.completion_tokens == args_tokens

    named = {"type": "function", "function": {"name": "get_time"}}
    resp = oai.chat.completions.create(
        model="gpt-4o", messages=messages, tools=OA_TOOLS, tool_choice=named
    )
    assert [c.function.name for c in resp.choices[0].message.tool_calls] == ["get_time"]
    resp = oai.chat.completions.create(
        model="gpt-4o", messages=messages, tools=OA_TOOLS, tool_choice="none"
    )
    assert resp.choices[0].message.tool_calls is None and resp.choices[0].finish_reason == "stop"

    body = oa_body("weather in parallel", tools=OA_TOOLS, stream=True)
    chunks = openai_chunks(raw(server, "/v1/chat/completions", body, oa_headers()).body)
    args: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or ():
            if "id" in call:
                assert call["function"]["arguments"] == "" and call["type"] == "function"
            args[call["index"]] = args.get(call["index"], "") + call["function"]["arguments"]
    assert [json.loads(a) for a in args.values()] == [
        json.loads(c.function.arguments) for c in calls
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_tool_results_answer_mentions_them(sim: Sim, oai: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and 21C"},
    ]
    resp = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OA_TOOLS)
    assert "sunny and 21C" in resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"


def test_openai_limits_cache_and_stop(sim: Sim, oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "long answer"}],
        max_completion_tokens=3,
    )
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 3
    assert resp.model == "gpt-4o-mini-2024-07-18"
    system = "You are cached and helpful."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "say: a b c"}]
    resp = oai.chat.completions.create(model="gpt-4o", messages=messages, stop=["b"])
    assert resp.choices[0].message.content == "a "
    assert resp.usage.prompt_tokens_details.cached_tokens == text.count_tokens(system)
    assert (
        resp.usage.prompt_tokens
        == text.count_tokens(system + " say: a b c") + 2 * text.PER_MESSAGE_TOKENS
    )


def test_openai_models_auth_and_not_found(
    sim: Sim, oai: openai.OpenAI, server: BackgroundServer
) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o" in ids and "gpt-4o-2024-08-06" in ids
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body == sample("openai/errors/401.json")["body"]["error"]
    with pytest.raises(openai.NotFoundError) as nf:
        oai.chat.completions.create(
            model="gpt-9-turbo", messages=[{"role": "user", "content": "x"}]
        )
    assert nf.value.code == "model_not_found" and "`gpt-9-turbo`" in nf.value.message
    result = raw(server, "/v1/chat/completions", oa_body(), {})
    assert result.status == 401 and result.json() == sample("openai/errors/401.json")["body"]


def test_openai_rejects_unknown_fields_and_schema_violations(
    sim: Sim, oai: openai.OpenAI, server: BackgroundServer
) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_body={"bogus": 1}
        )
    assert "Unrecognized request argument supplied: bogus" in exc.value.message
    result = raw(
        server,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user"}]},
        oa_headers(),
    )
    assert result.status == 400 and result.json()["error"]["type"] == "invalid_request_error"
    assert_valid("openai/error.schema.json", result.json())
    (violation,) = sim.violations
    assert violation.path == "/v1/chat/completions" and violation.status == 400
    assert violation.schema_errors[0].startswith("messages.0")


# --- Anthropic through its SDK -----------------------------------------------------------------


def test_anthropic_message_and_cache(sim: Sim, claude: anthropic.Anthropic) -> None:
    system = [
        {
            "type": "text",
            "text": "You are a careful assistant.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    raw_resp = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=system,
        messages=[{"role": "user", "content": "hello claude"}],
    )
    assert_valid("anthropic/messages.response.schema.json", raw_resp.http_response.json())
    msg = raw_resp.parse()
    assert msg.model == "claude-haiku-4-5-20251001" and msg.stop_reason == "end_turn"
    reply = msg.content[0].text
    assert reply.startswith("You said: hello claude.")
    assert msg.usage.output_tokens == text.count_tokens(reply)
    system_tokens = text.count_tokens(system[0]["text"])
    assert msg.usage.cache_read_input_tokens == system_tokens
    total = (
        msg.usage.input_tokens
        + msg.usage.cache_read_input_tokens
        + msg.usage.cache_creation_input_tokens
    )
    assert total == system_tokens + 2 + 2 * text.PER_MESSAGE_TOKENS
    write = [
        {"type": "text", "text": "cache-write this prompt", "cache_control": {"type": "ephemeral"}}
    ]
    msg = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=write,
        messages=[{"role": "user", "content": "x"}],
    )
    assert msg.usage.cache_creation_input_tokens == text.count_tokens(write[0]["text"]) > 0
    assert (
        msg.usage.cache_creation.ephemeral_5m_input_tokens == msg.usage.cache_creation_input_tokens
    )
    assert msg.usage.cache_read_input_tokens == 0
    (first, _) = sim.received
    assert first.headers["anthropic-version"] and not first.schema_errors


def test_anthropic_stream_events_validate(
    sim: Sim, server: BackgroundServer, claude: anthropic.Anthropic
) -> None:
    body = an_body("weather in parallel please", tools=AN_TOOLS, stream=True)
    events = anthropic_events(raw(server, "/v1/messages", body, an_headers()).body)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:3] == ["content_block_start", "ping"]
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    inputs: dict[int, list[str]] = {}
    for event in events:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            inputs.setdefault(event["index"], []).append(event["delta"]["partial_json"])
    assert sorted(inputs) == [1, 2] and all(parts[0] == "" for parts in inputs.values())
    assert [json.loads("".join(p)) for p in inputs.values()] == [
        {"location": "sim", "unit": "celsius", "days": 1},
        {"tz": "sim"},
    ]

    with claude.messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    tool_tokens = sum(
        text.count_tokens(json.dumps(b.input, separators=(",", ":"))) for b in final.content[1:]
    )
    assert final.usage.output_tokens == text.count_tokens(final.content[0].text) + tool_tokens


def test_anthropic_text_stream_limits_and_tool_results(
    sim: Sim, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=4,
        messages=[{"role": "user", "content": "tell me more"}],
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert (
        final.stop_reason == "max_tokens"
        and final.usage.output_tokens == 4 == text.count_tokens(streamed)
    )
    msg = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        stop_sequences=["c"],
        messages=[{"role": "user", "content": "say: a b c d"}],
    )
    assert (msg.stop_reason, msg.stop_sequence, msg.content[0].text) == (
        "stop_sequence",
        "c",
        "a b ",
    )
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy 12C"}],
        },
    ]
    msg = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=100, tools=AN_TOOLS, messages=messages
    )
    assert msg.stop_reason == "end_turn" and "rainy 12C" in msg.content[0].text


def test_anthropic_models_auth_version_and_errors(
    sim: Sim, claude: anthropic.Anthropic, server: BackgroundServer
) -> None:
    page = claude.models.list()
    assert page.data[0].type == "model" and any(
        m.id == "claude-sonnet-4-5-20250929" for m in page.data
    )
    listing = raw(server, "/v1/models", headers=an_headers()).json()
    assert listing["first_id"] == listing["data"][0]["id"] and listing["has_more"] is False
    bad = anthropic.Anthropic(base_url=server.url, api_key="ak-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(**an_body())
    assert exc.value.body == sample("anthropic/errors/401.json")["body"]
    missing = raw(server, "/v1/messages", an_body(), {"x-api-key": ANTHROPIC_KEY})
    assert missing.status == 400 and "anthropic-version" in missing.json()["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as nf:
        claude.messages.create(**{**an_body(), "model": "claude-sonnet-9-20990101"})
    assert nf.value.body["error"] == {
        "type": "not_found_error",
        "message": "model: claude-sonnet-9-20990101",
    }
    for body in (
        {**an_body(), "bogus": 1},
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]},
    ):
        result = raw(server, "/v1/messages", body, an_headers())
        assert result.status == 400 and result.json()["error"]["type"] == "invalid_request_error"
        assert_valid("anthropic/error.schema.json", result.json())
    assert len(sim.violations) == 2


# --- faults, seen from a raw client -----------------------------------------------------------


def test_fault_reset(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("reset"))
    result = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert isinstance(result.error, aiohttp.ClientConnectionError) and result.status is None
    (record,) = sim.wait_for_requests(1, done=True)
    assert record.fault == "reset" and record.status is None


def test_fault_status_uses_the_kit_samples(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(
        Fault("status", status=429),
        Fault("status", status=429, headers={"retry-after": "0", "retry-after-ms": "5"}),
        Fault("status", status=429, sample="429-insufficient_quota"),
        Fault("status", status=529),
    )
    first = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    expected = sample("openai/errors/429.json")
    assert (first.status, first.json()) == (429, expected["body"])
    assert (
        first.headers["retry-after"] == "3"
        and first.headers["x-ratelimit-reset-tokens"] == "2.292s"
    )
    second = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert (second.headers["retry-after"], second.headers["retry-after-ms"]) == ("0", "5")
    third = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert third.json()["error"]["code"] == "insufficient_quota"
    fourth = raw(server, "/v1/messages", an_body(), an_headers())
    assert (fourth.status, fourth.json()) == (529, sample("anthropic/errors/529.json")["body"])
    assert (
        fourth.headers["request-id"] == sample("anthropic/errors/529.json")["headers"]["request-id"]
    )


def test_fault_slow_headers_and_slow_body(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("slow_headers", delay_ms=150), Fault("slow_body", delay_ms=150))
    slow_headers = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert slow_headers.status == 200 and slow_headers.first_byte_s >= 0.15
    slow_body = raw(server, "/v1/messages", an_body(), an_headers())
    assert slow_body.first_byte_s < 0.15 <= slow_body.elapsed_s
    assert slow_body.json()["type"] == "message"


def test_fault_stream_cut(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("stream_cut", after_events=3), Fault("stream_cut", after_events=2))
    cut = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    assert cut.status == 200 and isinstance(cut.error, aiohttp.ClientPayloadError)
    assert len(list(iter_events(cut.body))) == 3 and b"[DONE]" not in cut.body
    cut = raw(server, "/v1/messages", an_body(stream=True), an_headers())
    assert isinstance(cut.error, aiohttp.ClientPayloadError)
    assert [e["type"] for e in anthropic_events(cut.body)] == [
        "message_start",
        "content_block_start",
    ]
    sim.faults.push(Fault("stream_cut"))
    body_cut = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert isinstance(body_cut.error, aiohttp.ClientPayloadError)


def test_fault_stream_error(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("stream_error", after_events=2), Fault("stream_error", after_events=3))
    oa = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    events = list(iter_events(oa.body))
    assert len(events) == 3 and b"[DONE]" not in oa.body and oa.error is None
    assert orjson.loads(events[-1].data) == sample("openai/errors/500.json")["body"]
    an = raw(server, "/v1/messages", an_body(stream=True), an_headers())
    kinds = [e["type"] for e in anthropic_events(an.body)]
    assert kinds == ["message_start", "content_block_start", "ping", "error"]
    assert anthropic_events(an.body)[-1]["error"]["type"] == "overloaded_error"


def test_fault_invalid_json_wrong_content_type_and_ok_pacing(
    sim: Sim, server: BackgroundServer
) -> None:
    sim.faults.push(
        Fault("invalid_json"),
        Fault("wrong_content_type"),
        Fault("ok", n_chunks=3, chunk_delay_ms=40),
    )
    broken = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert broken.status == 200 and broken.headers["content-type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        broken.json()
    html = raw(server, "/v1/messages", an_body(), an_headers())
    assert html.status == 200 and html.headers["content-type"].startswith("text/html")
    paced = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    chunks = openai_chunks(paced.body)
    assert len(chunks) == 5  # role, three pieces, finish
    assert paced.elapsed_s >= 4 * 0.04


def test_fault_hang_until_client_leaves(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("hang"))
    result = raw(server, "/v1/chat/completions", oa_body(), oa_headers(), timeout=0.3)
    assert isinstance(result.error, TimeoutError)
    (record,) = sim.wait_for(lambda rs: bool(rs) and rs[0].done, timeout=3)
    assert record.disconnected and record.fault == "hang"


def test_client_disconnect_mid_stream_is_recorded(sim: Sim, server: BackgroundServer) -> None:
    sim.configure(chunk_delay_ms=50, n_chunks=20)
    result = raw(server, "/v1/messages", an_body(stream=True), an_headers(), timeout=0.3)
    assert isinstance(result.error, TimeoutError) and b"message_start" in result.body
    (record,) = sim.wait_for(lambda rs: bool(rs) and rs[0].done, timeout=3)
    assert record.disconnected and record.status == 200


def test_fault_scoping(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("status", status=500, path="/v1/messages"), Fault("status", status=503))
    assert (
        raw(server, "/v1/models", headers=oa_headers()).status == 200
    )  # unscoped: completions only
    assert raw(server, "/v1/chat/completions", oa_body(), oa_headers()).status == 503
    assert raw(server, "/v1/messages", an_body(), an_headers()).status == 500
    sim.faults.push(Fault("status", status=500, path="/v1/models"))
    assert raw(server, "/v1/models", headers=oa_headers()).status == 500
    assert len(sim.faults) == 0


def test_control_api(sim: Sim, server: BackgroundServer) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession(server.url) as s:
            faults = [
                {"kind": "status", "status": 429, "headers": {"retry-after": "1"}},
                {"kind": "reset"},
            ]
            async with s.post("/_sim/faults", json=faults) as r:
                assert (r.status, await r.json()) == (200, {"queued": 2})
            async with s.get("/_sim/faults") as r:
                assert [f["kind"] for f in (await r.json())["faults"]] == ["status", "reset"]
            async with s.post("/v1/chat/completions", json=oa_body(), headers=oa_headers()) as r:
                assert r.status == 429 and r.headers["retry-after"] == "1"
            async with s.delete("/_sim/faults") as r:
                assert (await r.json()) == {"cleared": 1}
            async with s.post("/_sim/faults", json={"kind": "explode"}) as r:
                assert r.status == 400
            async with s.get("/_sim/received") as r:
                summary = await r.json()
            assert summary["count"] == 1
            (req,) = summary["requests"]
            assert req["headers"]["authorization"] == "<redacted>" and req["status"] == 429
            assert req["json"]["model"] == "gpt-4o" and req["fault"] == "status"
            async with s.patch("/_sim/config", json={"n_chunks": 2}) as r:
                assert (await r.json())["n_chunks"] == 2
            async with s.delete("/_sim/received") as r:
                assert r.status == 200

    asyncio.run(go())
    assert sim.received == [] and sim.config.n_chunks == 2


def test_records_are_bounded_and_waits_time_out(sim: Sim, server: BackgroundServer) -> None:
    sim.configure(max_records=2)
    for word in ("one", "two", "three"):
        raw(server, "/v1/chat/completions", oa_body(word), oa_headers())
    records = sim.wait_for_requests(2, done=True)
    assert [r.json["messages"][0]["content"] for r in records] == ["two", "three"]
    assert records[0].t < records[1].t and all(r.status == 200 for r in records)
    with pytest.raises(TimeoutError):
        sim.wait_for(lambda rs: len(rs) > 2, timeout=0.05)
    found = asyncio.run(sim.wait_for_async(lambda rs: len(rs) == 2, timeout=1))
    assert len(found) == 2


def test_validation_follows_the_kit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Sim().config.validate is True  # the kit sits beside the repository
    monkeypatch.setenv("SIM_VENDOR_KIT", str(tmp_path))
    assert Sim().config.validate is False
    with pytest.raises(FileNotFoundError):
        Sim(validate=True)


# --- the runner and the CLI --------------------------------------------------------------------


def test_background_server_runs_async_factories_and_cleans_up() -> None:
    events: list[str] = []

    async def factory() -> web.Application:
        app = web.Application()

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hi")

        async def cleanup(app: web.Application) -> None:
            events.append("cleanup")

        app.router.add_get("/", hello)
        app.on_cleanup.append(cleanup)
        return app

    with BackgroundServer(factory) as srv:
        assert srv.port > 0 and raw(srv, "/").body == b"hi"
    assert events == ["cleanup"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(OSError):
            BackgroundServer(factory, port=held.getsockname()[1]).start()
    assert 0 < free_port() < 65536


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "proxy.sim",
        "--port",
        "0",
        "--no-validate",
        "--openai-key",
        OPENAI_KEY,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("proxy.sim listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        client = openai.OpenAI(base_url=url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "say: pong"}]
        )
        assert reply.choices[0].message.content == "pong"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
