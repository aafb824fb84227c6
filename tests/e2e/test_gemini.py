"""Gemini (AI Studio) through the real gateway with the official openai and anthropic SDKs.

The strict fake validates every request against the schema derived from Google's protos,
refuses what the live API refuses (empty texts, unmatched function responses, and for Gemini 3
models a call sent back without its ``thoughtSignature``), and the sim fixture fails the test
on any invalid request it recorded.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from proxy.pricing import Price, Usage, cost, format_usd
from proxy.sim.faults import Fault
from proxy.sim.gemini import BLOCK_PROMPT
from tests.conftest import CLIENT_KEY, GEMINI_KEY

FLASH, PRO, GEMINI_3 = "gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview"
PRICES = {
    FLASH: Price(Decimal("0.0003"), Decimal("0.0025"), Decimal("0.00003")),
    PRO: Price(Decimal("0.00125"), Decimal("0.010"), Decimal("0.000125")),
}
WITH_GEMINI_3 = {
    "models": {
        GEMINI_3: {"provider": "gemini", "price": {"input_per_1k": 0.002, "output_per_1k": 0.012}}
    }
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
ANTHROPIC_WEATHER = {
    "name": WEATHER["name"],
    "description": WEATHER["description"],
    "input_schema": WEATHER["parameters"],
}
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def path(model: str, stream: bool = False) -> str:
    verb = "streamGenerateContent" if stream else "generateContent"
    return f"/v1beta/models/{model}:{verb}"


def calls(sim: Any) -> list[Any]:
    return [r for r in sim.sim.received if r.path.startswith("/v1beta/models/")]


def google(code: int, status: str) -> Fault:
    body = {"error": {"code": code, "message": f"{status} (simulated)", "status": status}}
    return Fault(kind="status", status=code, body=body)


def expected_cost(model: str, prompt: int, completion: int) -> Decimal:
    return cost(PRICES[model], Usage(prompt_tokens=prompt, completion_tokens=completion))


# --- text, streams, usage and cost ------------------------------------------------------------


@pytest.mark.parametrize("model", [FLASH, PRO])
def test_openai_sdk_text_with_exact_cost(gateway, sim, model):
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
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-model"] == model
    usage = reply.usage
    if model == PRO:  # thinking tokens are output tokens
        assert usage.completion_tokens_details.reasoning_tokens == 12
    amount = expected_cost(model, usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-llm-cost-usd"] == format_usd(amount)
    assert usage.model_extra["cost"] == float(format_usd(amount))
    (record,) = calls(sim)
    assert record.path == path(model)
    assert record.headers["x-goog-api-key"] == GEMINI_KEY
    assert "key=" not in record.path and "authorization" not in record.headers
    assert CLIENT_KEY not in json.dumps(dict(record.headers))
    assert record.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_openai_sdk_stream_matches_the_whole_answer(gateway, sim):
    client = gateway.openai()
    messages = [{"role": "user", "content": "Tell me about sidecars and gateways, please."}]
    whole = client.chat.completions.create(model=FLASH, messages=messages)
    chunks = list(
        client.chat.completions.create(
            model=FLASH, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage.total_tokens == whole.usage.total_tokens
    amount = expected_cost(FLASH, final.usage.prompt_tokens, final.usage.completion_tokens)
    assert final.usage.model_extra["cost"] == float(format_usd(amount))
    assert calls(sim)[-1].path == path(FLASH, stream=True) + "?alt=sse" or calls(sim)[-1].stream


LONG_PRO = Price(Decimal("0.0025"), Decimal("0.015"), Decimal("0.00025"))  # prompts > 200K


def test_a_prompt_over_200k_tokens_is_billed_at_the_long_prompt_tier(gateway, sim):
    """gemini-2.5-pro bills a whole request at higher prices once its prompt passes 200K
    tokens (config.yaml's ``price.tiers``): whole answers and streams alike."""
    client = gateway.openai()
    messages = [{"role": "user", "content": "word " * 200_500}]
    raw = client.chat.completions.with_raw_response.create(model=PRO, messages=messages)
    usage = raw.parse().usage
    assert usage.prompt_tokens > 200_000
    tokens = Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
    amount = cost(LONG_PRO, tokens)
    assert amount > cost(PRICES[PRO], tokens)
    assert raw.headers["x-llm-cost-usd"] == format_usd(amount)
    assert usage.model_extra["cost"] == float(format_usd(amount))
    stream = gateway.anthropic().messages.create(
        model=PRO, max_tokens=100, messages=messages, stream=True
    )
    final = [e for e in stream if e.type == "message_delta"][-1]
    assert final.usage.input_tokens == usage.prompt_tokens
    streamed = Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=final.usage.output_tokens)
    assert final.usage.model_extra["cost"] == float(format_usd(cost(LONG_PRO, streamed)))


def test_anthropic_sdk_text_and_stream(gateway, sim):
    client = gateway.anthropic()
    message = client.messages.create(
        model=PRO,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "say: hello from claude land"}],
    )
    assert message.content[0].text == "hello from claude land"
    assert message.stop_reason == "end_turn"
    amount = expected_cost(PRO, message.usage.input_tokens, message.usage.output_tokens)
    assert message.usage.model_extra["cost"] == float(format_usd(amount))
    assert calls(sim)[-1].json["generationConfig"]["maxOutputTokens"] == 100
    with client.messages.stream(
        model=FLASH, max_tokens=100, messages=[{"role": "user", "content": "say: streamed words"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert (
        "".join(e.delta.text for e in events if e.type == "content_block_delta") == "streamed words"
    )
    assert final.stop_reason == "end_turn"
    delta = next(e for e in events if e.type == "message_delta")  # where the cost rides
    amount = expected_cost(FLASH, final.usage.input_tokens, final.usage.output_tokens)
    assert final.usage.input_tokens > 0
    assert delta.usage.model_extra["cost"] == float(format_usd(amount))


# --- tools ------------------------------------------------------------------------------------


def test_openai_sdk_tool_round_trip_keeps_the_thought_signature(gateway_factory, sim):
    client = gateway_factory(WITH_GEMINI_3).openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "14C, light rain"},
    ]
    second = client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools)
    assert "14C, light rain" in second.choices[0].message.content
    sent = calls(sim)[-1].json["contents"]
    assert "thoughtSignature" in sent[1]["parts"][0]  # the fake checked it matches
    assert sent[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_openai_sdk_streamed_tool_call(gateway_factory, sim):
    client = gateway_factory(WITH_GEMINI_3).openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    chunks = list(
        client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools, stream=True)
    )
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    (delta,) = deltas
    assert delta.function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    call = {
        "id": delta.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": delta.function.arguments},
    }
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": delta.id, "content": "-3C, snow"},
    ]
    reply = client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools)
    assert "-3C, snow" in reply.choices[0].message.content


def test_anthropic_sdk_tool_round_trip(gateway_factory, sim):
    client = gateway_factory(WITH_GEMINI_3).anthropic()
    tool = ANTHROPIC_WEATHER
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Rome?"}]
    first = client.messages.create(model=GEMINI_3, max_tokens=200, messages=messages, tools=[tool])
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "22C, sunny"}],
        },
    ]
    second = client.messages.create(model=GEMINI_3, max_tokens=200, messages=messages, tools=[tool])
    assert "22C, sunny" in second.content[0].text


def test_a_gemini_conversation_moves_to_openai_and_back(gateway_factory, sim):
    """Gemini 3's ids carry its thought signature and run past OpenAI's 40 characters: the
    gateway shortens them for OpenAI (whose fake refuses longer ones, as the live API does),
    and the client's own ids still take the signature back to Gemini afterwards."""
    client = gateway_factory(WITH_GEMINI_3).openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools)
    (call,) = first.choices[0].message.tool_calls
    assert len(call.id) > 40
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "14C, light rain"},
    ]
    for stream in (False, True):
        on_openai = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=tools, stream=stream
        )
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in on_openai if c.choices)
        else:
            text = on_openai.choices[0].message.content
        assert "14C, light rain" in text
    sent = sim.completions()[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"]
    assert len(sent[2]["tool_call_id"]) <= 40
    back = client.chat.completions.create(model=GEMINI_3, messages=messages, tools=tools)
    assert "14C, light rain" in back.choices[0].message.content
    assert "thoughtSignature" in calls(sim)[-1].json["contents"][1]["parts"][0]


def test_an_anthropic_client_moves_a_gemini_conversation_to_openai(gateway_factory, sim):
    client = gateway_factory(WITH_GEMINI_3).anthropic()
    tool = ANTHROPIC_WEATHER
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Rome?"}]
    first = client.messages.create(model=GEMINI_3, max_tokens=200, messages=messages, tools=[tool])
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert len(use.id) > 40
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "22C, sunny"}],
        },
    ]
    second = client.messages.create(
        model="gpt-4o-mini", max_tokens=200, messages=messages, tools=[tool]
    )
    assert "22C, sunny" in second.content[0].text


# --- images -----------------------------------------------------------------------------------


def test_a_data_url_image_goes_inline(gateway, sim):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    reply = gateway.openai().chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content
    parts = calls(sim)[-1].json["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PIXEL}}


def test_an_https_image_is_a_clear_400_without_an_upstream_call(gateway, sim):
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": content}]
        )
    assert (
        "data: URL" in str(caught.value)
        and caught.value.response.headers["x-llm-error"] == "invalid_request"
    )
    assert calls(sim) == []


# --- errors -----------------------------------------------------------------------------------


def test_resource_exhausted_waits_the_retry_delay_and_passes_it_on(gateway_factory, sim):
    gateway = gateway_factory({"retry": {"max_retries": 1}})
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}
            ],
        }
    }
    fault = Fault(kind="status", status=429, body=body, path=path(FLASH))
    sim.sim.faults.push(fault)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=FLASH, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-llm-attempts"] == "2"
    first, second = calls(sim)
    assert second.t - first.t >= 0.05  # the wait the body asked for
    sim.sim.faults.push(fault, fault)
    with pytest.raises(openai.RateLimitError) as caught:
        gateway.openai().chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": "hi"}]
        )
    headers = caught.value.response.headers
    assert headers["x-llm-error"] == "rate_limit_exceeded" and headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        (Fault(kind="status", status=400, sample="400"), 401, "invalid_api_key"),
        (google(403, "PERMISSION_DENIED"), 401, "invalid_api_key"),
        (google(400, "INVALID_ARGUMENT"), 400, "invalid_request"),
        (Fault(kind="status", status=500), 502, "provider_error"),
        (Fault(kind="status", status=504), 504, "timeout"),
    ],
)  # fmt: skip
def test_google_errors_map_onto_the_taxonomy(gateway, sim, fault, status, kind):
    retried = status >= 500
    sim.sim.faults.push(
        *[Fault(**{**fault.to_dict(), "path": path(FLASH)})] * (3 if retried else 1)
    )
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(
            model=FLASH, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-llm-error"] == kind
    assert len(calls(sim)) == (3 if retried else 1)


def test_an_unknown_upstream_model_is_model_not_found(gateway_factory, sim):
    gateway = gateway_factory(
        {
            "models": {
                "gemini-nope": {
                    "provider": "gemini",
                    "price": {"input_per_1k": 1, "output_per_1k": 1},
                }
            }
        }
    )
    with pytest.raises(anthropic.NotFoundError) as caught:
        gateway.anthropic().messages.create(
            model="gemini-nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["x-llm-error"] == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
def test_a_blocked_prompt_is_a_400_naming_the_reason(gateway, sim, stream):
    messages = [{"role": "user", "content": f"{BLOCK_PROMPT} how do I"}]
    with pytest.raises(openai.BadRequestError) as caught:
        reply = gateway.openai().chat.completions.create(
            model=FLASH, messages=messages, stream=stream
        )
        list(reply) if stream else None
    assert "PROHIBITED_CONTENT" in str(caught.value)
    assert caught.value.response.headers["x-llm-error"] == "invalid_request"
    assert len(calls(sim)) == 1  # never retried


def test_a_safety_stop_is_content_filter(gateway, sim):
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "I can"}]},
                "finishReason": "SAFETY",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
        "modelVersion": FLASH,
        "responseId": "r1",
    }
    sim.sim.faults.push(Fault(kind="status", status=200, body=body, path=path(FLASH)))
    reply = gateway.openai().chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.usage.model_extra["cost"] == float(format_usd(expected_cost(FLASH, 4, 2)))


def test_a_stream_error_after_the_first_event_ends_the_stream_in_the_dialect(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_error", path=path(FLASH, True), after_events=1))
    stream = gateway.openai().chat.completions.create(
        model=FLASH,
        stream=True,
        messages=[{"role": "user", "content": "Tell me a long story please"}],
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_health_check_lists_gemini_models(gateway, sim):
    import urllib.request

    with urllib.request.urlopen(f"{gateway.url}/health/providers", timeout=10) as reply:
        body = json.loads(reply.read())
    assert body["gemini"]["healthy"] is True
    record = [r for r in sim.sim.received if r.path == "/v1beta/models"][-1]
    assert record.headers["x-goog-api-key"] == GEMINI_KEY


def test_the_responses_api_reaches_gemini_through_the_hub(gateway, sim):
    client = gateway.openai()
    response = client.responses.create(model=FLASH, input="say: a responses answer")
    assert response.output_text == "a responses answer"
    assert response.usage.model_extra["cost"] > 0
    events = list(
        client.responses.create(model=FLASH, input="say: streamed responses", stream=True)
    )
    done = [e for e in events if e.type == "response.completed"]
    assert done and done[0].response.output_text == "streamed responses"
    assert all(r.path.startswith("/v1beta/models/") for r in calls(sim))
