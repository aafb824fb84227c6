"""The official ``cohere`` SDK (``ClientV2``) against the fake Cohere: what the fake answers is
what the real client library parses, so the gateway is tested against a faithful upstream.

The SDK parses leniently and only logs a warning for an event it cannot build, so each test
also fails on any such warning and validates the raw answers against the schemas derived from
Cohere's OpenAPI description.
"""

from __future__ import annotations

import logging

import cohere
import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.sim.faults import kit_dir
from proxy.sse import SSEParser
from tests.conftest import COHERE_KEY
from tests.http import post

SCHEMAS = kit_dir() / "schemas" / "cohere"
MODEL = "command-a-03-2025"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads((SCHEMAS / f"{name}.schema.json").read_bytes()))


@pytest.fixture
def client(sim, caplog) -> cohere.ClientV2:
    caplog.set_level(logging.WARNING)
    yield cohere.ClientV2(api_key=COHERE_KEY, base_url=sim.url, max_retries=0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_chat_text(client):
    reply = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "say: hello cohere"}], max_tokens=20
    )
    assert reply.finish_reason == "COMPLETE"
    assert reply.message.content[0].text == "hello cohere"
    assert reply.usage.billed_units.output_tokens == 2
    assert reply.usage.tokens.input_tokens > reply.usage.billed_units.input_tokens


def test_chat_tool_call_and_citations(client):
    messages = [{"role": "user", "content": "weather in Rome?"}]
    reply = client.chat(model=MODEL, messages=messages, tools=TOOLS)
    assert reply.finish_reason == "TOOL_CALL"
    assert reply.message.tool_plan == "I will use get_weather."
    (call,) = reply.message.tool_calls
    assert call.function.name == "get_weather"
    messages += [
        {"role": "assistant", "tool_plan": reply.message.tool_plan, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call.id, "content": "warm"},
    ]
    final = client.chat(model=MODEL, messages=messages, tools=TOOLS)
    assert final.message.content[0].text == "Based on the tool results: warm."
    (citation,) = final.message.citations
    assert citation.text == "warm" and citation.sources[0].type == "tool"


def test_chat_stream_events_parse_as_their_types(client):
    events = list(
        client.chat_stream(model=MODEL, messages=[{"role": "user", "content": "say: a b c"}])
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "message-start" and kinds[-1] == "message-end"
    assert isinstance(events[0], cohere.MessageStartV2ChatStreamResponse)
    deltas = [e for e in events if isinstance(e, cohere.ContentDeltaV2ChatStreamResponse)]
    assert "".join(e.delta.message.content.text for e in deltas) == "a b c"
    assert events[-1].delta.finish_reason == "COMPLETE"
    assert events[-1].delta.usage.billed_units.output_tokens == 3


def test_chat_stream_tool_calls(client):
    events = list(
        client.chat_stream(
            model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
        )
    )
    plan = "".join(e.delta.message.tool_plan for e in events if e.type == "tool-plan-delta")
    assert plan == "I will use get_weather."
    (start,) = [e for e in events if isinstance(e, cohere.ToolCallStartV2ChatStreamResponse)]
    assert start.delta.message.tool_calls.function.name == "get_weather"
    arguments = "".join(
        e.delta.message.tool_calls.function.arguments
        for e in events
        if isinstance(e, cohere.ToolCallDeltaV2ChatStreamResponse)
    )
    assert orjson.loads(arguments) == {"city": "sim"}
    assert events[-1].delta.finish_reason == "TOOL_CALL"


def test_errors_raise_the_sdks_own_exceptions(client, sim):
    hello = [{"role": "user", "content": "x"}]
    with pytest.raises(cohere.NotFoundError):
        client.chat(model="no-such-model", messages=hello)
    with pytest.raises(cohere.UnprocessableEntityError) as caught:
        extra = {"additional_body_parameters": {"frequency": 1}}
        client.chat(model=MODEL, messages=hello, request_options=extra)
    assert "frequency" in str(caught.value.body)
    sim.sim.clear()  # that invalid request was ours, on purpose
    bad_key = cohere.ClientV2(api_key="wrong", base_url=sim.url, max_retries=0)
    with pytest.raises(cohere.UnauthorizedError):
        bad_key.chat(model=MODEL, messages=hello)


def test_the_fakes_raw_answers_match_the_derived_schemas(sim):
    headers = {"authorization": f"Bearer {COHERE_KEY}", "content-type": "application/json"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS}
    reply = post(f"{sim.url}/v2/chat", orjson.dumps(body), headers)
    assert reply.status_code == 200
    assert not list(validator("chat.v2.response").iter_errors(orjson.loads(reply.content)))
    for stream_body in ({**body, "stream": True}, {**body, "tools": [], "stream": True}):
        reply = post(f"{sim.url}/v2/chat", orjson.dumps(stream_body), headers)
        events = SSEParser().feed(reply.content)
        assert events[-1].data == b"[DONE]"
        for event in events[:-1]:
            payload = orjson.loads(event.data)
            assert event.name == payload["type"]
            assert not list(validator("chat.v2.stream-event").iter_errors(payload))
    reply = post(f"{sim.url}/v2/chat", orjson.dumps({**body, "top_p": 0.5}), headers)
    assert reply.status_code == 422  # the schema's additionalProperties: false
    assert not list(validator("error").iter_errors(orjson.loads(reply.content)))
    sim.sim.clear()  # that invalid request was ours, on purpose
