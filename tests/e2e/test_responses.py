"""``POST /v1/responses`` through the official ``openai`` SDK: passed through to the OpenAI
fake (which validates against the kit's Responses request schema) and translated to Claude.
Text, streams, tools over two turns, images, usage and exact cost, and the 400s for what a
stateless provider cannot do.
"""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from proxy.pricing import Price, cost, format_usd
from proxy.providers.responses import usage_from_responses
from proxy.sim.text import count_tokens
from tests.e2e.test_pairings import PIXEL, WEATHER

OPENAI_MODEL, CLAUDE_MODEL = "gpt-4o", "claude-3.5-sonnet"
MODELS = [OPENAI_MODEL, CLAUDE_MODEL]
PRICES = {
    OPENAI_MODEL: Price(Decimal("0.0025"), Decimal("0.010")),
    CLAUDE_MODEL: Price(Decimal("0.003"), Decimal("0.015")),
}
UPSTREAM_PATH = {OPENAI_MODEL: "/v1/responses", CLAUDE_MODEL: "/v1/messages"}
IMAGE = f"data:image/png;base64,{PIXEL}"
TOOL = {"type": "function", **WEATHER, "strict": False}  # the published schema requires it


def _expected_cost(model: str, usage: dict) -> Decimal:
    return cost(PRICES[model], usage_from_responses(usage))


@pytest.mark.parametrize("model", MODELS)
def test_text(gateway, sim, model):
    raw = gateway.openai().responses.with_raw_response.create(
        model=model, instructions="Be brief.", input="say: the answer is 42"
    )
    reply = raw.parse()
    assert reply.output_text == "the answer is 42"
    assert reply.status == "completed" and reply.id.startswith("resp_")
    usage = reply.usage.model_dump()
    assert usage["output_tokens"] == count_tokens("the answer is 42")
    expected = _expected_cost(model, usage)
    assert raw.headers["x-llm-cost-usd"] == format_usd(expected)
    assert usage["cost"] == float(format_usd(expected))
    assert raw.headers["x-llm-output-tokens"] == str(usage["output_tokens"])
    assert raw.headers["x-llm-provider"] == ("openai" if model == OPENAI_MODEL else "anthropic")
    received = sim.completions()[-1]
    assert received.path == UPSTREAM_PATH[model]
    assert "Be brief." in json.dumps(received.json)
    assert "authorization" not in received.headers or "sk-client" not in str(received.headers)


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_text_usage_and_cost(gateway, model):
    client = gateway.openai()
    deltas: list[str] = []
    with client.responses.stream(model=model, input="say: one two three four five") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "one two three four five"
    assert len(deltas) > 1
    usage = final.usage.model_dump()
    assert usage["cost"] == float(format_usd(_expected_cost(model, usage)))


@pytest.mark.parametrize("model", MODELS)
def test_raw_stream_events_have_consecutive_sequence_numbers(gateway, model):
    raw = gateway.openai().responses.with_raw_response.create(
        model=model, input="say: hello there", stream=True
    )
    events = list(raw.parse())
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.in_progress"
    assert events[-1].type == "response.completed"
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1
    added = [e.item.id for e in events if e.type == "response.output_item.added"]
    done = [e.item.id for e in events if e.type == "response.output_item.done"]
    assert added == done == [item.id for item in events[-1].response.output]
    assert raw.headers["x-llm-model"] and raw.headers["content-type"].startswith("text/event")


def _weather_turns(client, model: str, stream: bool):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    if stream:
        with client.responses.stream(model=model, input=[question], tools=[TOOL]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input=[question], tools=[TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments).keys() == {"city"}
    history = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": "sunny, 21 C"}
        for c in calls
    ]
    second = client.responses.create(model=model, input=history + outputs, tools=[TOOL])
    return first, second


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_tools_across_two_turns(gateway, sim, model, stream):
    first, second = _weather_turns(gateway.openai(), model, stream)
    assert first.status == "completed"
    assert "sunny, 21 C" in second.output_text
    assert second.usage.model_dump()["cost"] > 0
    received = sim.completions()[-1].json
    if model == CLAUDE_MODEL:  # the tool result reached Claude as a tool_result block
        blocks = [b for m in received["messages"] for b in m["content"] if isinstance(b, dict)]
        assert any(b["type"] == "tool_result" for b in blocks)
        assert any(b["type"] == "tool_use" for b in blocks)
    else:
        assert received["input"][-1]["type"] == "function_call_output"


@pytest.mark.parametrize("model", MODELS)
def test_image_input(gateway, sim, model):
    reply = gateway.openai().responses.create(
        model=model,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "say: a pixel"},
                    {"type": "input_image", "image_url": IMAGE, "detail": "auto"},
                ],
            }
        ],
    )
    assert reply.output_text == "a pixel"
    received = sim.completions()[-1].json
    if model == CLAUDE_MODEL:
        block = received["messages"][0]["content"][1]
        assert block["type"] == "image" and block["source"]["data"] == PIXEL
    else:
        assert received["input"][0]["content"][1]["type"] == "input_image"


def test_stateful_features_pass_through_to_openai(gateway, sim):
    client = gateway.openai()
    first = client.responses.create(model=OPENAI_MODEL, input="say: remember me", store=True)
    second = client.responses.create(
        model=OPENAI_MODEL, input="say: done", previous_response_id=first.id
    )
    assert second.output_text == "done"
    assert sim.completions()[-1].json["previous_response_id"] == first.id


STATEFUL = [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"conversation": "conv_123"}, "conversation"),
    ({"tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]"),
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0]"),
]


@pytest.mark.parametrize(("extra", "param"), STATEFUL, ids=[p for _, p in STATEFUL])
def test_stateful_features_are_a_clear_400_on_translated_providers(gateway, sim, extra, param):
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.openai().responses.create(model=CLAUDE_MODEL, input="hi", **extra)
    error = raised.value
    assert error.body["type"] == "invalid_request" and error.body["param"] == param
    assert error.response.headers["x-llm-error"] == "invalid_request"
    message = error.body["message"]
    assert "keeps none" in message or "Built-in tool" in message
    assert sim.completions() == []  # no upstream call


def test_unknown_model_is_404_in_the_openai_error_shape(gateway, sim):
    with pytest.raises(openai.NotFoundError) as raised:
        gateway.openai().responses.create(model="no-such-model", input="hi")
    assert raised.value.body["type"] == "model_not_found"
    assert sim.completions() == []


def test_malformed_request_is_400(gateway):
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.openai().responses.create(model=CLAUDE_MODEL, input=42)  # type: ignore[arg-type]
    assert raised.value.body["param"] == "input"


@pytest.mark.parametrize("model", MODELS)
def test_upstream_error_mid_stream_raises_in_the_sdk(gateway, sim, model):
    from proxy.sim.faults import Fault

    sim.sim.faults.push(Fault(kind="stream_error", after_events=3))
    with pytest.raises(openai.APIError):
        list(gateway.openai().responses.create(model=model, input="say: a b c d", stream=True))


def test_the_offline_demo_shows_a_responses_call_routed_to_claude(capsys):
    from proxy.demo import run_demo

    assert run_demo() == 0
    shown = capsys.readouterr().out
    section = shown.split("== openai SDK responses.create -> claude-3.5-sonnet", 1)[1]
    assert "provider=anthropic" in section.split("==", 1)[0]
    assert "status=completed usage.cost=0.000" in section.split("==", 1)[0]


def _needing(capability: str) -> dict:
    """A Responses request that needs ``capability``."""
    image = {"type": "input_image", "image_url": IMAGE, "detail": "auto"}
    schema = {"type": "json_schema", "name": "x", "schema": {"type": "object", "properties": {}}}
    return {
        "tools": {"input": "hello", "tools": [TOOL]},
        "vision": {"input": [{"role": "user", "content": [image]}]},
        "json_schema": {"input": "hello", "text": {"format": schema}},
        "streaming": {"input": "hello", "stream": True},
        "system_prompt": {"input": "hello", "instructions": "be brief"},
        "reasoning": {"input": "hello", "reasoning": {"effort": "low"}},
        "context_window": {"input": "many words of prompt " * 2000},
    }[capability]


CAPABILITIES = ["tools", "vision", "json_schema", "streaming", "system_prompt", "reasoning",
                "context_window"]  # fmt: skip


@pytest.mark.parametrize("model", ["limited", "limited-claude"])
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_capabilities_refuse_responses_requests_before_any_upstream_call(
    gateway_factory, sim, model, capability
):
    from tests.e2e.test_capabilities import CONFIG

    with pytest.raises(openai.BadRequestError) as caught:
        gateway_factory(CONFIG).openai().responses.create(model=model, **_needing(capability))
    error = caught.value
    assert error.body["type"] == "invalid_request"
    assert f"'{capability}'" in error.body["message"]
    assert error.response.headers["x-llm-attempts"] == "0"
    assert sim.completions() == []


def test_max_output_tokens_above_the_model_limit_is_clamped_on_pass_through(gateway_factory, sim):
    small = {"provider": "openai", "upstream_model": "gpt-4o-mini",
             "capabilities": {"max_output_tokens": 100}}  # fmt: skip
    gateway = gateway_factory({"models": {"small-out": small}})
    gateway.openai().responses.create(model="small-out", input="say: hi", max_output_tokens=5000)
    assert sim.completions()[-1].json["max_output_tokens"] == 100


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["azure-gpt-4o", "azure-v1"])
def test_azure_passes_the_responses_api_through(gateway_factory, sim, model, stream):
    """Classic (api_version) and v1 Azure providers alike: Azure's Responses API is on v1."""
    from tests.e2e.vendor_configs import (
        ENVIRON,
        assert_credentials,
        configure_sim,
        expected_cost,
        last_post,
        overrides,
    )

    configure_sim(sim)
    client = gateway_factory(overrides(sim.url), environ=ENVIRON).openai()
    first = client.responses.create(model=model, input="say: remember me", store=True)
    if stream:
        with client.responses.stream(
            model=model, input="say: hello azure", previous_response_id=first.id
        ) as events:
            reply = events.get_final_response()
    else:
        reply = client.responses.create(
            model=model, input="say: hello azure", previous_response_id=first.id
        )
    assert reply.output_text == "hello azure"
    usage = reply.usage.model_dump()
    assert usage["cost"] == float(expected_cost(model, usage_from_responses(usage)))
    received = last_post(sim)
    assert received.path == "/openai/v1/responses" and received.json["model"] == "gpt-4o-prod"
    assert received.json["previous_response_id"] == first.id
    assert_credentials(sim, model)


def test_an_openai_compatible_server_gets_the_translation(gateway_factory, sim):
    from tests.e2e.vendor_configs import ENVIRON, configure_sim, last_post, overrides

    configure_sim(sim)
    client = gateway_factory(overrides(sim.url), environ=ENVIRON).openai()
    reply = client.responses.create(model="local-llama", input="say: local answer")
    assert reply.output_text == "local answer" and reply.output[0].type == "message"
    assert last_post(sim).path == "/compat/v1/chat/completions"
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="local-llama", input="hi", previous_response_id="resp_1")
    assert raised.value.body["param"] == "previous_response_id"


@pytest.mark.parametrize("stream", [False, True])
def test_cohere_reaches_the_responses_dialect_through_the_hub(gateway, sim, stream):
    """A vendor added after the dialect: no code of the pair, text, tools and cost work."""
    from tests.e2e.test_cohere import MODEL, PRICE

    client = gateway.openai()
    question = {"role": "user", "content": "What is the weather in Paris?"}
    if stream:
        with client.responses.stream(model=MODEL, input=[question], tools=[TOOL]) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model=MODEL, input=[question], tools=[TOOL])
    call = next(item for item in first.output if item.type == "function_call")
    answer = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}
    history = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    second = client.responses.create(model=MODEL, input=[*history, answer], tools=[TOOL])
    assert "sunny, 21 C" in second.output_text
    usage = second.usage.model_dump()
    assert usage["cost"] == float(format_usd(cost(PRICE, usage_from_responses(usage))))
    assert sim.completions()[-1].path == "/v2/chat"
