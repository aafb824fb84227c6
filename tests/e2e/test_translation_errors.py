"""Translation failure paths: unsupported parameters, cut streams, Anthropic error statuses."""

from __future__ import annotations

import anthropic
import openai
import pytest

from proxy.sim.faults import Fault

HELLO = [{"role": "user", "content": "hello"}]


def test_unsupported_parameter_for_claude_is_400_naming_it(gateway, sim):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(
            model="claude-3.5-sonnet", messages=HELLO, seed=7, presence_penalty=0.5
        )
    error = caught.value.body
    assert error["type"] == "invalid_request"
    assert "seed" in error["message"] and "presence_penalty" in error["message"]
    assert sim.completions() == []


def test_neutral_values_of_unsupported_parameters_are_dropped(gateway, sim):
    reply = gateway.openai().chat.completions.create(
        model="claude-3.5-sonnet", messages=HELLO, n=1, presence_penalty=0, logprobs=False
    )
    assert reply.choices[0].message.content
    sent = sim.completions()[-1].json
    assert not {"n", "presence_penalty", "logprobs"} & set(sent)


def test_drop_unsupported_params_switch_drops_them(gateway_factory, sim):
    gateway = gateway_factory({"providers": {"anthropic": {"drop_unsupported_params": True}}})
    reply = gateway.openai().chat.completions.create(
        model="claude-3.5-sonnet", messages=HELLO, seed=7
    )
    assert reply.choices[0].message.content
    assert "seed" not in sim.completions()[-1].json


def test_cut_anthropic_stream_gives_openai_error_event(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_cut", after_events=4))
    stream = gateway.openai().chat.completions.create(
        model="claude-3.5-sonnet", stream=True, messages=[{"role": "user", "content": "story"}]
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "before the stream was complete" in str(caught.value)


def test_cut_openai_stream_gives_anthropic_error_event(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_cut", after_events=4))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        gateway.anthropic().messages.stream(
            model="gpt-4o", max_tokens=100, messages=HELLO
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "before the stream was complete" in str(caught.value)


def test_in_stream_overload_from_anthropic_reaches_openai_client(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_error", after_events=3))
    stream = gateway.openai().chat.completions.create(
        model="claude-3.5-sonnet", stream=True, messages=HELLO
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


@pytest.mark.parametrize(
    ("status", "openai_exc", "kind", "anthropic_type"),
    [
        (529, openai.InternalServerError, "provider_error", "overloaded_error"),
        (500, openai.InternalServerError, "provider_error", "api_error"),
        (429, openai.RateLimitError, "rate_limit_exceeded", "rate_limit_error"),
        (401, openai.AuthenticationError, "invalid_api_key", "authentication_error"),
        (404, openai.NotFoundError, "model_not_found", "not_found_error"),
        (400, openai.BadRequestError, "invalid_request", "invalid_request_error"),
    ],
)
def test_anthropic_error_statuses_map_in_both_dialects(
    gateway_factory, sim, status, openai_exc, kind, anthropic_type
):
    gateway = gateway_factory({"breaker": {"enabled": False}})  # six failures in a row here
    headers = {"retry-after": "0"} if status == 429 else {}
    for _ in range(6):
        sim.sim.faults.push(Fault(kind="status", status=status, headers=headers))
    with pytest.raises(openai_exc) as caught:
        gateway.openai().chat.completions.create(model="claude-3.5-sonnet", messages=HELLO)
    assert caught.value.body["type"] == kind
    assert caught.value.response.headers["x-llm-error"] == kind
    with pytest.raises(anthropic.APIStatusError) as native:
        gateway.anthropic().messages.create(
            model="claude-3.5-sonnet", max_tokens=10, messages=HELLO
        )
    assert native.value.body["error"]["type"] == anthropic_type
    assert native.value.response.headers["x-llm-error"] == kind
    sim.sim.faults.clear()
