"""Fallbacks across vendors: an OpenAI model falling back to Claude and the reverse, streamed or
not, with translation; the answering model's provider, model and price are what the client sees.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from proxy.pricing import Usage, cost, format_usd
from proxy.sim.faults import Fault

HELLO = [{"role": "user", "content": "hello"}]
OPENAI_PATH, ANTHROPIC_PATH = "/v1/chat/completions", "/v1/messages"
HAIKU = "claude-3-5-haiku-20241022"
POLICY: dict[str, Any] = {
    "retry": {"max_retries": 1, "initial_backoff_ms": 10, "max_backoff_ms": 20},
    "breaker": {"failure_threshold": 50, "min_requests": 50},
    "models": {
        # gpt-4o-mini -> claude-3-5-haiku is in the shipped config; Claude -> OpenAI here
        "claude-3-5-sonnet-20241022": {"fallbacks": ["gpt-4o"]},
        "gpt-4.1": {"fallbacks": ["claude-3-opus", "gpt-4o-mini"]},
    },
}


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(POLICY)


def fail(sim, path: str, times: int = 2, fault: Fault | None = None) -> None:
    """Make the next ``times`` requests to one vendor's path fail (2 = 1 + max_retries)."""
    fault = fault or Fault(kind="status", status=503)
    sim.sim.faults.push(*[Fault(**{**fault.to_dict(), "path": path})] * times)


def price_of(gateway, model: str):
    return gateway.state.snapshot.models[model].price


def paths(sim) -> list[str]:
    return [r.path for r in sim.completions()]


def test_openai_model_falls_back_to_claude(gateway, sim):
    fail(sim, OPENAI_PATH)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert paths(sim) == [OPENAI_PATH, OPENAI_PATH, ANTHROPIC_PATH]
    assert sim.completions()[-1].json["model"] == HAIKU
    assert raw.headers["x-llm-provider"] == "anthropic"
    assert raw.headers["x-llm-model"] == HAIKU
    assert raw.headers["x-llm-attempts"] == "3"
    usage = Usage.from_openai(reply.usage.model_dump())
    amount = cost(price_of(gateway, HAIKU), usage)
    assert amount != cost(price_of(gateway, "gpt-4o-mini"), usage)
    assert raw.headers["x-llm-cost-usd"] == format_usd(amount)
    assert reply.usage.model_extra["cost"] == float(format_usd(amount))


def test_claude_model_falls_back_to_openai(gateway, sim):
    fail(sim, ANTHROPIC_PATH, fault=Fault(kind="status", status=529))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3.5-sonnet", max_tokens=50, messages=HELLO
    )
    reply = raw.parse()
    assert reply.type == "message" and reply.content[0].text
    assert paths(sim) == [ANTHROPIC_PATH, ANTHROPIC_PATH, OPENAI_PATH]
    assert raw.headers["x-llm-provider"] == "openai"
    assert raw.headers["x-llm-model"] == "gpt-4o"
    usage = Usage.from_anthropic(reply.usage.model_dump())
    amount = cost(price_of(gateway, "gpt-4o"), usage)
    assert raw.headers["x-llm-cost-usd"] == format_usd(amount)
    assert reply.usage.model_extra["cost"] == float(format_usd(amount))


def test_openai_stream_falls_back_to_a_claude_stream(gateway, sim):
    fail(sim, OPENAI_PATH, fault=Fault(kind="reset"))
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "say: one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-llm-provider"] == "anthropic"
    assert raw.headers["x-llm-model"] == HAIKU
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    usage = Usage.from_openai(chunks[-1].usage.model_dump())
    assert chunks[-1].usage.model_extra["cost"] == float(
        format_usd(cost(price_of(gateway, HAIKU), usage))
    )
    assert sim.completions()[-1].stream


def test_claude_stream_falls_back_to_an_openai_stream(gateway, sim):
    fail(sim, ANTHROPIC_PATH, fault=Fault(kind="stream_error", after_events=0))
    with gateway.anthropic().messages.stream(
        model="claude-3.5-sonnet",
        max_tokens=50,
        messages=[{"role": "user", "content": "say: alpha beta"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "alpha beta"
    assert headers["x-llm-provider"] == "openai"
    assert headers["x-llm-model"] == "gpt-4o"
    # the accumulated message drops unknown usage fields; the cost rides on message_delta
    delta = next(e for e in events if e.type == "message_delta")
    usage = Usage.from_anthropic(final.usage.model_dump())
    assert delta.usage.model_extra["cost"] == float(
        format_usd(cost(price_of(gateway, "gpt-4o"), usage))
    )


def test_fallbacks_are_tried_in_order(gateway, sim):
    """gpt-4.1 -> claude-3-opus (fails too) -> gpt-4o-mini answers."""
    sim.sim.faults.push(*[Fault(kind="status", status=500)] * 4)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4.1", messages=HELLO
    )
    assert raw.parse().choices[0].message.content
    assert [r.model for r in sim.completions()] == [
        "gpt-4.1",
        "gpt-4.1",
        "claude-3-opus-20240229",
        "claude-3-opus-20240229",
        "gpt-4o-mini",
    ]
    assert raw.headers["x-llm-model"] == "gpt-4o-mini"
    assert raw.headers["x-llm-attempts"] == "5"


def test_every_target_failing_reports_the_last_upstream_error(gateway, sim):
    sim.sim.faults.push(*[Fault(kind="status", status=503)] * 4)
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-llm-attempts"] == "4"
    assert caught.value.response.headers["x-llm-provider"] == "anthropic"


@pytest.mark.parametrize(("status", "answered"), [(400, 400), (401, 401), (404, 404), (422, 400)])
def test_a_non_retryable_error_never_falls_back(gateway, sim, status, answered):
    fail(sim, OPENAI_PATH, times=1, fault=Fault(kind="status", status=status))
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == answered
    assert caught.value.response.headers["x-llm-attempts"] == "1"
    assert paths(sim) == [OPENAI_PATH]


def test_a_long_retry_after_moves_to_the_fallback_at_once(gateway_factory, sim):
    gateway = gateway_factory({**POLICY, "retry": {"max_retries": 3, "max_retry_after_ms": 1000}})
    fail(
        sim,
        OPENAI_PATH,
        times=1,
        fault=Fault(kind="status", status=429, headers={"retry-after": "30"}),
    )
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.headers["x-llm-provider"] == "anthropic"
    assert raw.headers["x-llm-attempts"] == "2"
    assert paths(sim) == [OPENAI_PATH, ANTHROPIC_PATH]


def test_an_open_circuit_goes_straight_to_the_fallback(gateway_factory, sim):
    gateway = gateway_factory(
        {**POLICY, "providers": {"openai": {"breaker": {"failure_threshold": 1, "cooldown_s": 60}}}}
    )
    fail(sim, OPENAI_PATH)  # a failed request (two attempts) opens it; the fallback answers
    first = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert first.headers["x-llm-provider"] == "anthropic"
    assert gateway.state.breakers.states()["openai"] == "open"
    sim.sim.clear()
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert raw.headers["x-llm-provider"] == "anthropic"
    assert raw.headers["x-llm-attempts"] == "1"
    assert paths(sim) == [ANTHROPIC_PATH]


def test_a_fallback_that_cannot_take_the_request_is_skipped(gateway_factory, sim):
    """seed is not expressible for Claude: that fallback is skipped, the next one answers."""
    gateway = gateway_factory(
        {**POLICY, "models": {"gpt-4o": {"fallbacks": ["claude-3-opus", "gpt-4.1"]}}}
    )
    fail(sim, OPENAI_PATH, times=2)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, seed=7
    )
    assert raw.headers["x-llm-model"] == "gpt-4.1"
    assert ANTHROPIC_PATH not in paths(sim)


def test_anthropic_sdk_error_after_every_fallback_is_in_anthropic_format(gateway, sim):
    sim.sim.faults.push(*[Fault(kind="status", status=500)] * 4)
    with pytest.raises(anthropic.APIStatusError) as caught:
        gateway.anthropic().messages.create(
            model="claude-3.5-sonnet", max_tokens=20, messages=HELLO
        )
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    assert caught.value.response.headers["x-llm-provider"] == "openai"
