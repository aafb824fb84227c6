"""Azure OpenAI (classic and v1) and OpenAI-compatible servers (keyless and keyed) through the
real gateway with the official SDKs: text, streams, tool round trips, images, usage and exact
cost, the right credential upstream and never the client's. The fakes validate every request
against the kit's OpenAI schema (tests/conftest.py fails a test that sent an invalid one)."""

from __future__ import annotations

import json

import pytest

from proxy.pricing import Usage
from proxy.sim.text import count_tokens
from tests.e2e.test_pairings import PIXEL, WEATHER
from tests.e2e.vendor_configs import (
    ALL,
    AZURE,
    AZURE_V1,
    ENVIRON,
    KEYED,
    LOCAL,
    PATH,
    UPSTREAM_MODEL,
    assert_credentials,
    configure_sim,
    expected_cost,
    last_post,
    overrides,
)


@pytest.fixture
def gw(gateway_factory, sim):
    configure_sim(sim, compat_key=None)
    return gateway_factory(overrides(sim.url), environ=ENVIRON)


def _keyed(sim, model):
    if model == KEYED:
        sim.sim.configure(compat_key=ENVIRON["COMPAT_KEY"])


@pytest.mark.parametrize("model", ALL)
def test_openai_sdk_text_usage_and_exact_cost(gw, sim, model):
    _keyed(sim, model)
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "say: the answer is 42"},
        ],
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "the answer is 42"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.id and reply.created > 0 and reply.object == "chat.completion"
    usage = Usage.from_openai(reply.usage.model_dump())
    assert usage.completion_tokens == count_tokens("the answer is 42")
    assert raw.headers["x-llm-cost-usd"] == expected_cost(model, usage)
    assert reply.usage.model_extra["cost"] == float(expected_cost(model, usage))
    assert raw.headers["x-llm-model"] == UPSTREAM_MODEL[model]  # the deployment it called
    record = last_post(sim)
    assert record.path == PATH[model]
    if model == AZURE:
        assert record.json["model"] == "gpt-4o-prod"
    if model in (AZURE, AZURE_V1):  # Azure answers with the model version, not the deployment
        assert reply.model == "gpt-4o-2024-11-20"
        assert reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
        assert "content_filter_results" in reply.choices[0].model_extra
    assert_credentials(sim, model)


@pytest.mark.parametrize("model", ALL)
def test_openai_sdk_stream(gw, sim, model):
    _keyed(sim, model)
    chunks = list(
        gw.openai().chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "say: streaming works fine"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streaming works fine"
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert all(c.id and c.created > 0 and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    usage = Usage.from_openai(chunks[-1].usage.model_dump())
    assert usage.completion_tokens == count_tokens(text)
    assert chunks[-1].usage.model_extra["cost"] == float(expected_cost(model, usage))
    if model in (AZURE, AZURE_V1):  # the prompt-filter chunk, made a valid chunk, is kept
        first = chunks[0]
        assert first.choices == [] and first.model == "gpt-4o-2024-11-20"
        assert first.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert_credentials(sim, model)


@pytest.mark.parametrize("model", ALL)
def test_anthropic_sdk_text_and_stream(gw, sim, model):
    _keyed(sim, model)
    client = gw.anthropic()
    raw = client.messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "say: hello from anthropic"}],
    )
    message = raw.parse()
    assert [b.text for b in message.content if b.type == "text"] == ["hello from anthropic"]
    assert message.stop_reason == "end_turn"
    usage = Usage.from_anthropic(message.usage.model_dump())
    assert raw.headers["x-llm-cost-usd"] == expected_cost(model, usage)
    assert last_post(sim).json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert_credentials(sim, model)
    with client.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "say: a streamed reply"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == (
        "a streamed reply"
    )
    assert final.stop_reason == "end_turn" and final.id
    delta = next(e for e in events if e.type == "message_delta")
    streamed = Usage.from_anthropic(final.usage.model_dump())
    assert delta.usage.model_extra["cost"] == float(expected_cost(model, streamed))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ALL)
def test_openai_sdk_tool_round_trip(gw, sim, model, stream):
    _keyed(sim, model)
    client = gw.openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if stream:
        calls: dict[int, dict] = {}
        for chunk in client.chat.completions.create(
            model=model, messages=messages, tools=tools, stream=True
        ):
            for part in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                slot = calls.setdefault(part.index, {"id": None, "name": "", "args": ""})
                slot["id"] = slot["id"] or part.id
                slot["name"] += part.function.name or ""
                slot["args"] += part.function.arguments or ""
        call_id, name, args = calls[0]["id"], calls[0]["name"], calls[0]["args"]
    else:
        reply = client.chat.completions.create(model=model, messages=messages, tools=tools)
        assert reply.choices[0].finish_reason == "tool_calls"
        call = reply.choices[0].message.tool_calls[0]
        call_id, name, args = call.id, call.function.name, call.function.arguments
    assert name == "get_weather" and json.loads(args) == {"city": "sim"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 C"},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=tools)
    assert "Sunny, 21 C" in final.choices[0].message.content
    assert last_post(sim).json["messages"][-1]["tool_call_id"] == call_id


@pytest.mark.parametrize("model", ALL)
def test_anthropic_sdk_tool_round_trip_streamed(gw, sim, model):
    _keyed(sim, model)
    client = gw.anthropic()
    tools = [
        {
            "name": WEATHER["name"],
            "description": WEATHER["description"],
            "input_schema": WEATHER["parameters"],
        }
    ]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    with client.messages.stream(model=model, max_tokens=200, tools=tools, messages=messages) as s:
        message = s.get_final_message()
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
    assert "Sunny, 21 C" in final.content[0].text and final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", ALL)
def test_images_both_sdks(gw, sim, model):
    _keyed(sim, model)
    data_url = f"data:image/png;base64,{PIXEL}"
    reply = gw.openai().chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this."},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    parts = last_post(sim).json["messages"][-1]["content"]
    assert [p["image_url"]["url"] for p in parts if p["type"] == "image_url"] == [data_url]
    image = {"type": "base64", "media_type": "image/png", "data": PIXEL}
    message = gw.anthropic().messages.create(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "image", "source": image}]}],
    )
    assert message.content[0].text
    parts = last_post(sim).json["messages"][-1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": data_url}}


@pytest.mark.parametrize("model", [AZURE, LOCAL])
def test_the_responses_dialect_reaches_both_types(gw, sim, model):
    response = gw.openai().responses.create(model=model, input="say: hello responses")
    assert response.output_text == "hello responses"
    # Azure takes the Responses API natively (its v1 path); a compatible server gets it
    # translated to Chat Completions.
    expected = "/openai/v1/responses" if model == AZURE else PATH[model]
    assert last_post(sim).path == expected


def test_the_offline_demo_shows_an_azure_deployment_and_a_local_model(capsys):
    from proxy.demo import AZURE_MODEL, LOCAL_MODEL, run_demo

    assert run_demo() == 0
    shown = capsys.readouterr().out
    azure = shown.split(f"== openai SDK -> {AZURE_MODEL}", 1)[1].split("==", 1)[0]
    assert "provider=azure  model=gpt-4o-prod" in azure and "cost-usd=0.000" in azure
    local = shown.split(f"== anthropic SDK -> {LOCAL_MODEL}", 1)[1].split("==", 1)[0]
    assert "provider=local  model=llama3.1:8b" in local
