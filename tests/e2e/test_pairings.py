"""All four client/upstream pairings through the real gateway, with the official SDKs.

openai SDK -> OpenAI and -> Claude; anthropic SDK -> Claude and -> OpenAI. Each: text with a
system prompt, non-stream and stream, a tool round trip (streamed too), an image. The fake
vendors validate every request they receive against the kit's schemas (tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from proxy.pricing import Price, Usage, cost, format_usd
from proxy.sim.text import count_tokens

OPENAI_MODEL, CLAUDE_MODEL = "gpt-4o", "claude-3.5-sonnet"
PRICES = {
    OPENAI_MODEL: Price(Decimal("0.0025"), Decimal("0.010")),
    CLAUDE_MODEL: Price(Decimal("0.003"), Decimal("0.015")),
}
UPSTREAM_PATH = {OPENAI_MODEL: "/v1/chat/completions", CLAUDE_MODEL: "/v1/messages"}
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
MODELS = [OPENAI_MODEL, CLAUDE_MODEL]


def _check_cost(model: str, usage: Usage, header: str, number: float) -> None:
    expected = cost(PRICES[model], usage)
    assert header == format_usd(expected)
    assert number == float(format_usd(expected))


# --- openai SDK -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_text_with_system_prompt(gateway, sim, model):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "say: the answer is 42"},
        ],
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "the answer is 42"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == count_tokens("the answer is 42")
    _check_cost(
        model,
        Usage.from_openai(reply.usage.model_dump()),
        raw.headers["x-llm-cost-usd"],
        reply.usage.model_extra["cost"],
    )
    received = sim.completions()[-1]
    assert received.path == UPSTREAM_PATH[model]
    if model == CLAUDE_MODEL:
        assert "Be brief." in json.dumps(received.json["system"])


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_stream(gateway, model):
    chunks = list(
        gateway.openai().chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "say: streaming works fine"},
            ],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streaming works fine"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage.completion_tokens == count_tokens(text)
    expected = cost(PRICES[model], Usage.from_openai(usage.model_dump()))
    assert usage.model_extra["cost"] == float(format_usd(expected))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_tool_round_trip(gateway, model, stream):
    client = gateway.openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in client.chat.completions.create(
            model=model, messages=messages, tools=tools, stream=True
        ):
            for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                slot = calls.setdefault(delta_call.index, {"id": None, "name": "", "args": ""})
                slot["id"] = slot["id"] or delta_call.id
                slot["name"] += (delta_call.function.name or "") if delta_call.function else ""
                slot["args"] += (delta_call.function.arguments or "") if delta_call.function else ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert finish == "tool_calls" and list(calls) == [0]
        call_id, name, args = calls[0]["id"], calls[0]["name"], json.loads(calls[0]["args"])
    else:
        reply = client.chat.completions.create(model=model, messages=messages, tools=tools)
        assert reply.choices[0].finish_reason == "tool_calls"
        call = reply.choices[0].message.tool_calls[0]
        call_id, name, args = call.id, call.function.name, json.loads(call.function.arguments)
    assert name == "get_weather" and args == {"city": "sim"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 C"},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert "Sunny, 21 C" in final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_images(gateway, sim, model):
    reply = gateway.openai().chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe these."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    body = sim.completions()[-1].json
    parts = body["messages"][-1]["content"]
    if model == CLAUDE_MODEL:
        sources = [p["source"] for p in parts if p["type"] == "image"]
        assert sources == [
            {"type": "base64", "media_type": "image/png", "data": PIXEL},
            {"type": "url", "url": "https://example.com/cat.jpg"},
        ]
    else:
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert urls == [f"data:image/png;base64,{PIXEL}", "https://example.com/cat.jpg"]


# --- anthropic SDK --------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_text_with_system_prompt(gateway, sim, model):
    raw = gateway.anthropic().messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "say: hello from anthropic"}],
    )
    message = raw.parse()
    assert [b.text for b in message.content if b.type == "text"] == ["hello from anthropic"]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == count_tokens("hello from anthropic")
    usage = Usage.from_anthropic(message.usage.model_dump())
    _check_cost(model, usage, raw.headers["x-llm-cost-usd"], message.usage.model_extra["cost"])
    assert raw.headers["x-llm-provider"] == ("openai" if model == OPENAI_MODEL else "anthropic")
    received = sim.completions()[-1]
    assert received.path == UPSTREAM_PATH[model]
    if model == OPENAI_MODEL:
        assert received.json["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_stream(gateway, model):
    client = gateway.anthropic()
    with client.messages.stream(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "say: a streamed reply"}],
    ) as stream:
        events = list(stream)
        message = stream.get_final_message()
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "a streamed reply"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == count_tokens(text)
    assert message.usage.input_tokens > 0
    # The SDK's accumulated message keeps only known usage fields; the cost rides on the
    # message_delta event itself (the contract's place for it).
    delta = next(e for e in events if e.type == "message_delta")
    expected = cost(PRICES[model], Usage.from_anthropic(message.usage.model_dump()))
    assert delta.usage.model_extra["cost"] == float(format_usd(expected))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_tool_round_trip(gateway, model, stream):
    client = gateway.anthropic()
    tools = [
        {
            "name": WEATHER["name"],
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
    ]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        with client.messages.stream(
            model=model, max_tokens=200, tools=tools, messages=messages
        ) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(
            model=model, max_tokens=200, tools=tools, messages=messages
        )
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "sim"}
    messages += [
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in message.content],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}],
        },
    ]
    final = client.messages.create(model=model, max_tokens=200, tools=tools, messages=messages)
    assert "Sunny, 21 C" in final.content[0].text
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_image(gateway, sim, model):
    message = gateway.anthropic().messages.create(
        model=model,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    assert message.content[0].text
    parts = sim.completions()[-1].json["messages"][-1]["content"]
    if model == OPENAI_MODEL:
        assert parts[0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
        }
    else:
        assert parts[0]["source"]["data"] == PIXEL


def test_anthropic_sdk_models_list_uses_anthropic_format(gateway):
    ids = [m.id for m in gateway.anthropic().models.list()]
    assert "claude-3-5-sonnet-20241022" in ids and "gpt-4o" in ids
