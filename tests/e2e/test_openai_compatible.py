"""What real OpenAI-compatible servers do differently, absorbed: usage left out (cost unknown,
never zero), ``stream_options`` refused (``send_stream_options: false``), ids without
``chatcmpl-`` and no ``created``, and ``reasoning_content`` (kept for OpenAI clients, Anthropic
``thinking`` blocks for Anthropic clients)."""

from __future__ import annotations

import time

import openai
import pytest

from proxy.sim.compat import reasoning_of
from proxy.sim.faults import Fault
from tests.e2e.vendor_configs import (
    ENVIRON,
    KEYED,
    LOCAL,
    REASONER,
    configure_sim,
    last_post,
    overrides,
)

SAY = [{"role": "user", "content": "say: hello there"}]
PLAIN = "plain-llama"
NO_STREAM_OPTIONS = {
    "providers": {
        "plain": {
            "type": "openai_compatible",
            "base_url": "{sim}/compat/v1",
            "send_stream_options": False,
        }
    },
    "models": {
        PLAIN: {
            "provider": "plain",
            "upstream_model": "llama3.1:8b",
            "price": {"input_per_1k": 0.0001, "output_per_1k": 0.0002},
        }
    },
}


@pytest.fixture
def gw(gateway_factory, sim):
    configure_sim(sim)
    extra = {
        "providers": {
            "plain": {**NO_STREAM_OPTIONS["providers"]["plain"], "base_url": f"{sim.url}/compat/v1"}
        },
        "models": NO_STREAM_OPTIONS["models"],
    }
    return gateway_factory(overrides(sim.url, extra), environ=ENVIRON)


def test_ids_and_timestamps_the_server_left_out(gw):
    before = int(time.time())
    reply = gw.openai().chat.completions.create(model=LOCAL, messages=SAY)
    assert not reply.id.startswith("chatcmpl-") and len(reply.id) == 32  # the server's own id
    assert reply.created >= before and reply.object == "chat.completion"
    assert reply.system_fingerprint is None
    chunks = list(gw.openai().chat.completions.create(model=LOCAL, messages=SAY, stream=True))
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id
    assert all(c.created >= before for c in chunks)


def test_a_server_that_omits_usage_leaves_the_cost_unknown(gw, sim):
    sim.sim.configure(compat_usage=False)
    raw = gw.openai().chat.completions.with_raw_response.create(model=LOCAL, messages=SAY)
    assert raw.parse().choices[0].message.content == "hello there"
    assert "x-llm-cost-usd" not in raw.headers
    assert raw.parse().usage.model_extra["cost"] is None
    chunks = list(
        gw.openai().chat.completions.create(
            model=LOCAL, messages=SAY, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["cost"] is None
    with gw.anthropic().messages.stream(model=LOCAL, max_tokens=50, messages=SAY) as stream:
        events = list(stream)
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.model_extra["cost"] is None


def test_send_stream_options_false_never_sends_it(gw, sim):
    sim.sim.configure(compat_stream_options=False)
    chunks = list(
        gw.openai().chat.completions.create(
            model=PLAIN, messages=SAY, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
    assert "stream_options" not in last_post(sim).json
    with gw.anthropic().messages.stream(model=PLAIN, max_tokens=50, messages=SAY) as stream:
        assert stream.get_final_message().content[0].text == "hello there"
    assert "stream_options" not in last_post(sim).json
    # The same server behind a provider without the switch: the refusal, as the server says it.
    with pytest.raises(openai.BadRequestError) as caught:
        list(gw.openai().chat.completions.create(model=LOCAL, messages=SAY, stream=True))
    assert "stream_options" in caught.value.body["message"]


def test_reasoning_content_passes_through_to_openai_clients(gw):
    thought = reasoning_of("deepseek-reasoner", {"messages": SAY})
    reply = gw.openai().chat.completions.create(model=REASONER, messages=SAY)
    assert reply.choices[0].message.model_extra["reasoning_content"] == thought
    assert reply.choices[0].message.content == "hello there"
    chunks = list(gw.openai().chat.completions.create(model=REASONER, messages=SAY, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    streamed = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert streamed.strip() == thought


def test_reasoning_content_becomes_anthropic_thinking(gw, sim):
    thought = reasoning_of("deepseek-reasoner", {"messages": SAY})
    client = gw.anthropic()
    message = client.messages.create(model=REASONER, max_tokens=100, messages=SAY)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == thought and message.content[1].text == "hello there"
    with client.messages.stream(model=REASONER, max_tokens=100, messages=SAY) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking.strip() == thought
    # Sent back in the history, the thinking block is dropped: DeepSeek refuses reasoning
    # content in input messages, and an OpenAI-wire server has no field for it.
    history = [
        *SAY,
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": "say: again"},
    ]
    again = client.messages.create(model=REASONER, max_tokens=100, messages=history)
    assert again.content[-1].text == "again"
    sent = last_post(sim).json["messages"][1]
    assert sent == {"role": "assistant", "content": "hello there"}


def test_errors_of_a_compatible_server_on_the_taxonomy(gateway_factory, sim):
    configure_sim(sim, compat_key=ENVIRON["COMPAT_KEY"])
    extra = {
        "models": {
            KEYED: {"retry": {"max_retries": 1}, "fallbacks": ["claude-3.5-sonnet"]},
            "keyed-unknown": {
                "provider": "keyed",
                "upstream_model": "no-such-model",
                "price": {"input_per_1k": 0, "output_per_1k": 0},
            },
        }
    }
    gw = gateway_factory(overrides(sim.url, extra), environ=ENVIRON)
    client = gw.openai()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="keyed-unknown", messages=SAY)
    assert caught.value.body["type"] == "model_not_found"
    sim.sim.faults.push(Fault(kind="status", status=500))
    raw = client.chat.completions.with_raw_response.create(model=KEYED, messages=SAY)
    assert raw.headers["x-llm-attempts"] == "2" and raw.headers["x-llm-provider"] == "keyed"
    sim.sim.faults.push(*[Fault(kind="status", status=429, headers={"retry-after": "7"})] * 2)
    raw = client.chat.completions.with_raw_response.create(model=KEYED, messages=SAY)
    assert raw.headers["x-llm-provider"] == "anthropic"  # 7 s is past the retry budget: fallback
    wrong = gateway_factory(overrides(sim.url), environ={**ENVIRON, "COMPAT_KEY": "wrong"})
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.openai().chat.completions.create(model=KEYED, messages=SAY)
    assert denied.value.body["type"] == "invalid_api_key"
    assert "wrong" not in str(denied.value.body)


def test_a_429_with_retry_after_is_passed_on(gateway_factory, sim):
    configure_sim(sim)
    extra = {"models": {LOCAL: {"retry": {"max_retries": 0}}}}
    gw = gateway_factory(overrides(sim.url, extra), environ=ENVIRON)
    sim.sim.faults.push(Fault(kind="status", status=429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as caught:
        gw.openai().chat.completions.create(model=LOCAL, messages=SAY)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["type"] == "rate_limit_exceeded"
