"""The simulated upstream's vendor wire formats, driven by the official SDKs and a raw client.

Whatever the sim sends must parse in the vendors' own SDKs and validate against the kit's
schemas, or every end-to-end test built on it proves nothing.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from proxy.sim import BackgroundServer, Sim, text
from tests.kit import assert_valid, sample
from tests.sdk import anthropic_client, openai_client
from tests.unit.sim_helpers import (
    AN_TOOLS,
    ANTHROPIC_KEY,
    OA_TOOLS,
    OPENAI_KEY,
    an_body,
    an_headers,
    anthropic_events,
    oa_body,
    oa_headers,
    openai_chunks,
    raw,
    server_fixture,  # noqa: F401  (the `server` fixture)
    sim_fixture,  # noqa: F401  (the `sim` fixture)
)


@pytest.fixture
def oai(server: BackgroundServer) -> openai.OpenAI:
    return openai_client(server.url + "/v1", OPENAI_KEY)


@pytest.fixture
def claude(server: BackgroundServer) -> anthropic.Anthropic:
    return anthropic_client(server.url, api_key=ANTHROPIC_KEY)


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


def test_openai_refuses_tool_call_ids_over_40_characters(sim: Sim, oai: openai.OpenAI) -> None:
    long_id = "call_" + "x" * 48
    function = {"name": "get_weather", "arguments": "{}"}
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": long_id, "type": "function", "function": function}],
        },
        {"role": "tool", "tool_call_id": long_id, "content": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OA_TOOLS)
    assert exc.value.code == "string_above_max_length"
    assert exc.value.param == "messages[1].tool_calls[0].id"
    assert "maximum length 40, but got a string with length 53" in exc.value.message


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
    bad = openai_client(server.url + "/v1", "sk-wrong")
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
    bad = anthropic_client(server.url, api_key="ak-wrong")
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
