"""``POST /v1/responses`` to Gemini through the hub (translated statelessly): text with exact
cost, a stream, a tool round trip across two turns (a Gemini 3 model, whose calls must come
back with their thought signatures: they ride in the ``call_id``), and the stateful 400."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from proxy.pricing import Price, cost, format_usd
from proxy.providers.responses import usage_from_responses
from tests.e2e.test_responses import TOOL

FLASH, GEMINI_3 = "gemini-2.5-flash", "gemini-3-pro-preview"
PRICE = Price(Decimal("0.0003"), Decimal("0.0025"), Decimal("0.00003"))
WITH_GEMINI_3 = {
    "models": {
        GEMINI_3: {"provider": "gemini", "price": {"input_per_1k": 0.002, "output_per_1k": 0.012}}
    }
}


def calls(sim):
    return [r for r in sim.sim.received if r.path.startswith("/v1beta/models/")]


def test_text_with_exact_cost(gateway, sim):
    raw = gateway.openai().responses.with_raw_response.create(
        model=FLASH, instructions="Be brief.", input="say: the answer is 42"
    )
    reply = raw.parse()
    assert reply.output_text == "the answer is 42" and reply.status == "completed"
    usage = reply.usage.model_dump()
    expected = cost(PRICE, usage_from_responses(usage))
    assert raw.headers["x-llm-cost-usd"] == format_usd(expected)
    assert usage["cost"] == float(format_usd(expected))
    assert raw.headers["x-llm-provider"] == "gemini"
    assert calls(sim)[-1].path == f"/v1beta/models/{FLASH}:generateContent"


def test_stream(gateway, sim):
    with gateway.openai().responses.stream(model=FLASH, input="say: one two three four") as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(deltas) == final.output_text == "one two three four"
    usage = final.usage.model_dump()
    assert usage["cost"] == float(format_usd(cost(PRICE, usage_from_responses(usage))))
    assert ":streamGenerateContent" in calls(sim)[-1].path


@pytest.mark.parametrize("stream", [False, True])
def test_tools_across_two_turns_keep_thought_signatures(gateway_factory, sim, stream):
    client = gateway_factory(WITH_GEMINI_3).openai()
    question = {"role": "user", "content": "What is the weather in Paris?"}
    if stream:
        with client.responses.stream(model=GEMINI_3, input=[question], tools=[TOOL]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=GEMINI_3, input=[question], tools=[TOOL])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments).keys() == {"city"}
    history = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    answer = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}
    second = client.responses.create(model=GEMINI_3, input=[*history, answer], tools=[TOOL])
    # the strict fake refuses a call sent back without its thought signature
    assert "sunny, 21 C" in second.output_text


def test_stateful_features_are_a_400_for_gemini(gateway, sim):
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.openai().responses.create(model=FLASH, input="hi", store=True)
    assert raised.value.body["param"] == "store" and calls(sim) == []
