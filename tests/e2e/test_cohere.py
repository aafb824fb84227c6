"""Cohere (v2 chat) end to end: the official openai and anthropic SDKs through the real gateway
to the strict fake Cohere, which validates every request against the schema derived from
Cohere's OpenAPI description (tests/conftest.py fails a test that sent an invalid one)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest

from proxy.pricing import Price, Usage, cost, format_usd
from proxy.sim.cohere import TEMPLATE_TOKENS
from proxy.sim.faults import Fault
from proxy.sim.text import PER_IMAGE_TOKENS, count_tokens
from tests.conftest import CLIENT_KEY, COHERE_KEY
from tests.http import get

MODEL = "command-a-03-2025"
VISION = "command-a-vision-07-2025"  # Command A itself reads no images (capability check)
PRICE = Price(Decimal("0.0025"), Decimal("0.010"))
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
HELLO = [{"role": "user", "content": "hello"}]


def cohere_requests(sim) -> list[Any]:
    return [r for r in sim.completions() if r.path == "/v2/chat"]


def expected_cost(usage: Usage) -> str:
    return format_usd(cost(PRICE, usage))


# --- text, usage and exact cost ------------------------------------------------------------


def test_openai_sdk_text_is_priced_on_billed_units(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "say: the answer is 42"},
        ],
        temperature=0.2,
        top_p=1,
        stop=["END"],
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "the answer is 42"
    assert reply.choices[0].finish_reason == "stop" and reply.model == MODEL
    received = cohere_requests(sim)[-1]
    assert received.headers["authorization"] == f"Bearer {COHERE_KEY}"
    assert CLIENT_KEY not in json.dumps(dict(received.headers))
    assert received.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "say: the answer is 42"},
        ],
        "temperature": 0.2,
        "stop_sequences": ["END"],
    }
    usage = Usage.from_openai(reply.usage.model_dump())
    assert usage.completion_tokens == count_tokens("the answer is 42")
    # Cohere's usage.tokens adds TEMPLATE_TOKENS it does not bill: the gateway must not.
    assert raw.headers["x-llm-input-tokens"] == str(usage.prompt_tokens)
    assert usage.prompt_tokens < TEMPLATE_TOKENS
    assert raw.headers["x-llm-cost-usd"] == expected_cost(usage)
    assert reply.usage.model_extra["cost"] == float(expected_cost(usage))


def test_openai_sdk_stream_with_usage_and_cost(gateway):
    chunks = list(
        gateway.openai().chat.completions.create(
            model="command-r-plus",  # an alias of command-r-plus-08-2024
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "say: streaming works fine"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streaming works fine"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    assert {c.model for c in chunks} == {"command-r-plus-08-2024"}
    usage = chunks[-1].usage
    assert usage.completion_tokens == count_tokens(text)
    assert usage.model_extra["cost"] == float(expected_cost(Usage.from_openai(usage.model_dump())))


def test_anthropic_sdk_text_and_stream(gateway, sim):
    client = gateway.anthropic()
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "say: hello from claude land"}],
    )
    message = raw.parse()
    assert message.content[0].text == "hello from claude land"
    assert message.stop_reason == "end_turn" and message.model == MODEL
    assert cohere_requests(sim)[-1].json["max_tokens"] == 50
    usage = Usage.from_anthropic(message.usage.model_dump())
    assert raw.headers["x-llm-cost-usd"] == expected_cost(usage)
    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "say: streamed text"}]
    ) as stream:
        assert "".join(stream.text_stream) == "streamed text"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == count_tokens("streamed text")


# --- tools ---------------------------------------------------------------------------------


def _openai_stream_call(client, model, messages, tools):
    calls: dict[int, dict] = {}
    plan, finish = "", None
    for chunk in client.chat.completions.create(
        model=model, messages=messages, tools=tools, stream=True
    ):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        plan += delta.content or ""
        for call in delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": None, "name": "", "args": ""})
            slot["id"] = slot["id"] or call.id
            slot["name"] += (call.function.name or "") if call.function else ""
            slot["args"] += (call.function.arguments or "") if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    (call,) = calls.values()
    return plan, call, finish


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_round_trip_with_plan_and_citations(gateway, sim, stream):
    client = gateway.openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        plan, call, finish = _openai_stream_call(client, MODEL, messages, tools)
    else:
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        message = reply.choices[0].message
        plan, finish = message.content, reply.choices[0].finish_reason
        tool_call = message.tool_calls[0]
        call = {"id": tool_call.id, "name": tool_call.function.name}
        call["args"] = tool_call.function.arguments
    assert finish == "tool_calls" and call["name"] == "get_weather"
    assert plan == "I will use get_weather."  # Cohere's tool_plan, as the assistant's text
    assert json.loads(call["args"]) == {"city": "sim"}
    messages.append(
        {
            "role": "assistant",
            "content": plan,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["args"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"})
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    answer = final.choices[0].message
    assert answer.content == "Based on the tool results: 18C and sunny."
    (citation,) = answer.model_extra["citations"]
    assert citation["text"] == "18C and sunny"
    assert citation["sources"][0]["id"] == f"{call['id']}:0"
    sent = cohere_requests(sim)[-1].json["messages"]
    assert sent[1]["tool_plan"] == "I will use get_weather." and "content" not in sent[1]
    assert sent[2] == {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_tool_round_trip_plan_is_a_text_block_first(gateway, sim, stream):
    client = gateway.anthropic()
    tools = [{"name": "get_weather", "input_schema": WEATHER["parameters"]}]
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    kwargs = {"model": MODEL, "max_tokens": 200, "tools": tools}
    if stream:
        with client.messages.stream(messages=messages, **kwargs) as events:
            reply = events.get_final_message()
    else:
        reply = client.messages.create(messages=messages, **kwargs)
    assert reply.stop_reason == "tool_use"
    assert [b.type for b in reply.content] == ["text", "tool_use"]
    assert reply.content[0].text == "I will use get_weather."
    use = reply.content[1]
    assert use.name == "get_weather" and use.input == {"city": "sim"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "minus 3"}
    messages.append({"role": "user", "content": [result]})
    final = client.messages.create(messages=messages, **kwargs)
    assert final.content[0].text == "Based on the tool results: minus 3."
    sent = cohere_requests(sim)[-1].json["messages"]
    assert sent[1]["tool_plan"] == "I will use get_weather."
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "minus 3"}


def test_named_tool_choice_sends_only_that_tool_as_required(gateway, sim):
    other = {**WEATHER, "name": "get_time"}
    gateway.openai().chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=[{"type": "function", "function": WEATHER}, {"type": "function", "function": other}],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    sent = cohere_requests(sim)[-1].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"]
    assert sent["tool_choice"] == "REQUIRED"


# --- images --------------------------------------------------------------------------------


def test_images_from_both_sdks(gateway, sim):
    data_url = f"data:image/png;base64,{PIXEL}"
    reply = gateway.openai().chat.completions.create(
        model=VISION,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "say: a pixel"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "a pixel"
    assert reply.usage.prompt_tokens >= PER_IMAGE_TOKENS
    part = cohere_requests(sim)[-1].json["messages"][0]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": data_url}}
    gateway.anthropic().messages.create(
        model=VISION,
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    {"type": "text", "text": "say: seen"},
                ],
            }
        ],
    )
    part = cohere_requests(sim)[-1].json["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "openai_exc", "kind", "anthropic_type", "attempts"),
    [
        (429, openai.RateLimitError, "rate_limit_exceeded", "rate_limit_error", 3),
        (500, openai.InternalServerError, "provider_error", "api_error", 3),
        (401, openai.AuthenticationError, "invalid_api_key", "authentication_error", 1),
        (498, openai.AuthenticationError, "invalid_api_key", "authentication_error", 1),
        (499, openai.InternalServerError, "provider_error", "api_error", 1),
        (404, openai.NotFoundError, "model_not_found", "not_found_error", 1),
        (422, openai.BadRequestError, "invalid_request", "invalid_request_error", 1),
    ],
)
def test_cohere_error_statuses_map_in_both_dialects(
    gateway_factory, sim, status, openai_exc, kind, anthropic_type, attempts
):
    gateway = gateway_factory({"breaker": {"enabled": False}})
    for _ in range(6):
        sim.sim.faults.push(Fault(kind="status", status=status, headers={"retry-after": "0"}))
    with pytest.raises(openai_exc) as caught:
        gateway.openai().chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.body["type"] == kind
    assert caught.value.response.headers["x-llm-error"] == kind
    assert caught.value.response.headers["x-llm-attempts"] == str(attempts)
    with pytest.raises(anthropic.APIStatusError) as native:
        gateway.anthropic().messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert native.value.body["error"]["type"] == anthropic_type
    sim.sim.faults.clear()


def test_a_retried_5xx_then_success(gateway, sim):
    sim.sim.faults.push(Fault(kind="status", status=503))
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "say: second time lucky"}]
    )
    assert raw.parse().choices[0].message.content == "second time lucky"
    assert raw.headers["x-llm-attempts"] == "2"


def test_a_failed_generation_mid_stream_reaches_both_dialects(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_error", after_events=3))
    with pytest.raises(openai.APIError) as caught:
        for _ in gateway.openai().chat.completions.create(model=MODEL, stream=True, messages=HELLO):
            pass
    assert "internal server error" in str(caught.value)
    sim.sim.faults.push(Fault(kind="stream_error", after_events=3))
    with (
        pytest.raises(anthropic.APIStatusError) as native,
        gateway.anthropic().messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream,
    ):
        for _ in stream:
            pass
    assert native.value.body["error"]["type"] == "api_error"


def test_a_cut_stream_is_an_error_not_a_short_answer(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_cut", after_events=3))
    with pytest.raises(openai.APIError) as caught:
        for _ in gateway.openai().chat.completions.create(model=MODEL, stream=True, messages=HELLO):
            pass
    assert "before the stream was complete" in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"tools": [{"type": "function", "function": {"name": "get-weather"}}]}, "tools"),
    ],
)
def test_what_cohere_cannot_take_is_a_400_before_any_upstream_call(gateway, sim, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=MODEL, messages=HELLO, **extra)
    assert caught.value.body["param"].startswith(param)
    assert cohere_requests(sim) == []


def test_drop_unsupported_params_on_the_provider(gateway_factory, sim):
    gateway = gateway_factory({"providers": {"cohere": {"drop_unsupported_params": True}}})
    reply = gateway.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "say: fine"}], n=1, logprobs=True
    )
    assert reply.choices[0].message.content == "fine"
    assert "logprobs" not in cohere_requests(sim)[-1].json


def test_the_cohere_provider_is_healthy(gateway, sim):
    reply = get(f"{gateway.url}/health/providers")
    assert reply.status_code == 200
    assert orjson.loads(reply.content)["cohere"]["healthy"] is True
    check = [r for r in sim.sim.received if r.path == "/v1/check-api-key"][-1]
    assert check.headers["authorization"] == f"Bearer {COHERE_KEY}"


# --- the Responses dialect reaches Cohere through the hub too -----------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_responses_api_clients_reach_cohere(gateway, sim, stream):
    from tests.e2e.test_responses import _weather_turns

    client = gateway.openai()
    raw = client.responses.with_raw_response.create(model=MODEL, input="say: via responses")
    reply = raw.parse()
    assert reply.output_text == "via responses" and raw.headers["x-llm-provider"] == "cohere"
    assert reply.usage.input_tokens < TEMPLATE_TOKENS  # billed units, not template tokens
    first, second = _weather_turns(client, MODEL, stream)
    assert first.output_text == "I will use get_weather."  # the plan, before the call
    assert "sunny, 21 C" in second.output_text
    sent = cohere_requests(sim)[-1].json["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny, 21 C"
