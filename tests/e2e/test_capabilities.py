"""Model capabilities through the official SDKs: pre-flight refusals in both dialects with zero
upstream calls, fallback by capability, o1-style adaptation, clamping, catalog prices, and the
capabilities on ``/v1/models``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from proxy.pricing import Usage, cost, format_usd

FLAGS_OFF = {
    "tools": False,
    "vision": False,
    "json_schema": False,
    "streaming": False,
    "system_prompt": False,
    "reasoning": False,
    "context_window": 2000,
    "max_output_tokens": 100,
}
CONFIG: dict[str, Any] = {
    "models": {
        # Everything off, on each vendor (the config overrides the catalog key by key).
        "limited": {"provider": "openai", "upstream_model": "gpt-4o-mini",
                    "capabilities": FLAGS_OFF},
        "limited-claude": {"provider": "anthropic", "upstream_model": "claude-3-haiku-20240307",
                           "capabilities": FLAGS_OFF},
        "choosy": {"provider": "openai", "upstream_model": "gpt-4o-mini",
                   "capabilities": {"tools": False}, "fallbacks": ["gpt-3.5-turbo", "gpt-4o"]},
        "o1": {"provider": "openai"},  # no price: the catalog's
    }
}  # fmt: skip
LONG = "many words of prompt " * 2000  # 42,000 characters: > 2,000 tokens by any count
TOOL_OPENAI = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
TOOL_ANTHROPIC = {"name": "f", "input_schema": {"type": "object"}}
PNG = (  # a 1x1 image
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HELLO = [{"role": "user", "content": "hello"}]


def openai_request(capability: str) -> dict[str, Any]:
    """An OpenAI-dialect request that needs ``capability``."""
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    schema = {"name": "x", "schema": {"type": "object", "properties": {}}}
    return {
        "tools": {"messages": HELLO, "tools": [TOOL_OPENAI]},
        "vision": {"messages": [{"role": "user", "content": image}]},
        "json_schema": {
            "messages": HELLO,
            "response_format": {"type": "json_schema", "json_schema": schema},
        },
        "streaming": {"messages": HELLO, "stream": True},
        "system_prompt": {"messages": [{"role": "system", "content": "be brief"}, *HELLO]},
        "reasoning": {"messages": HELLO, "reasoning_effort": "low"},
        "context_window": {"messages": [{"role": "user", "content": LONG}]},
    }[capability]


def anthropic_request(capability: str) -> dict[str, Any]:
    """An Anthropic-dialect request that needs ``capability`` (max_tokens within limits)."""
    source = {"type": "base64", "media_type": "image/png", "data": PNG}
    image = [{"type": "image", "source": source}, {"type": "text", "text": "what is this?"}]
    return {
        "tools": {"messages": HELLO, "tools": [TOOL_ANTHROPIC]},
        "vision": {"messages": [{"role": "user", "content": image}]},
        "streaming": {"messages": HELLO, "stream": True},
        "system_prompt": {"messages": HELLO, "system": "be brief"},
        "reasoning": {
            "messages": HELLO,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "max_tokens": 2048,
        },
        "context_window": {"messages": [{"role": "user", "content": LONG}]},
    }[capability]


OPENAI_CAPS = ["tools", "vision", "json_schema", "streaming", "system_prompt", "reasoning",
               "context_window"]  # fmt: skip
ANTHROPIC_CAPS = [c for c in OPENAI_CAPS if c != "json_schema"]  # Messages has no json_schema


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(CONFIG)


@pytest.mark.parametrize("model", ["limited", "limited-claude"])
@pytest.mark.parametrize("capability", OPENAI_CAPS)
def test_openai_client_refused_before_any_upstream_call(gateway, sim, model, capability):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=model, **openai_request(capability))
    error = caught.value
    assert error.status_code == 400
    assert error.body["type"] == "invalid_request"
    assert f"'{capability}'" in error.body["message"] and f"'{model}'" in error.body["message"]
    assert error.response.headers["x-llm-attempts"] == "0"
    assert sim.completions() == []


@pytest.mark.parametrize("model", ["limited", "limited-claude"])
@pytest.mark.parametrize("capability", ANTHROPIC_CAPS)
def test_anthropic_client_refused_before_any_upstream_call(gateway, sim, model, capability):
    body = {"max_tokens": 50, **anthropic_request(capability)}
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.anthropic().messages.create(model=model, **body)
    error = caught.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    message = error.body["error"]["message"]
    assert f"'{capability}'" in message and f"'{model}'" in message
    assert sim.completions() == []


def test_catalog_capabilities_refuse_tools_to_o1_preview(gateway, sim):
    """No capabilities in the config: the catalog knows o1-preview takes no tools."""
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(
            model="o1-preview", messages=HELLO, tools=[TOOL_OPENAI]
        )
    assert "'tools'" in caught.value.body["message"]
    assert sim.completions() == []


def test_a_request_the_model_can_serve_goes_through(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="limited", messages=HELLO, max_tokens=50
    )
    assert raw.parse().choices[0].message.content
    assert "x-llm-capability-fallback" not in raw.headers
    assert [r.json["model"] for r in sim.completions()] == ["gpt-4o-mini"]


def test_fallback_by_capability_goes_to_the_first_capable_model(gateway, sim):
    """choosy (no tools) -> gpt-3.5-turbo (tools, but no vision) -> gpt-4o (both)."""
    content = openai_request("vision")["messages"][0]["content"]
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="choosy", messages=[{"role": "user", "content": content}], tools=[TOOL_OPENAI]
    )
    assert raw.parse().choices
    assert raw.headers["x-llm-model"] == "gpt-4o"
    assert raw.headers["x-llm-capability-fallback"] == "choosy:tools, gpt-3.5-turbo:vision"
    assert raw.headers["x-llm-attempts"] == "1"
    assert [r.json["model"] for r in sim.completions()] == ["gpt-4o"]


def test_fallback_by_capability_in_the_anthropic_dialect(gateway, sim):
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="choosy", max_tokens=50, messages=HELLO, tools=[TOOL_ANTHROPIC]
    )
    assert raw.parse().content
    assert raw.headers["x-llm-model"] == "gpt-3.5-turbo"
    assert raw.headers["x-llm-capability-fallback"] == "choosy:tools"
    assert [r.json["model"] for r in sim.completions()] == ["gpt-3.5-turbo"]


def test_no_capable_fallback_is_the_primary_refusal(gateway, sim):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(
            model="choosy", messages=HELLO, tools=[TOOL_OPENAI], max_tokens=10, n=1,
            reasoning_effort="low",  # gpt-3.5-turbo and gpt-4o are not reasoning models
        )  # fmt: skip
    assert "'choosy'" in caught.value.body["message"]
    assert sim.completions() == []


def test_o1_adaptation_is_visible_upstream(gateway, sim):
    gateway.openai().chat.completions.create(
        model="o1",
        messages=[{"role": "system", "content": "be brief"}, *HELLO],
        max_tokens=50,
    )
    sent = sim.completions()[-1].json
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert [m["role"] for m in sent["messages"]] == ["developer", "user"]


def test_o1_adaptation_after_translation_from_anthropic(gateway, sim):
    gateway.anthropic().messages.create(
        model="o1", max_tokens=60, system="be brief", messages=HELLO
    )
    sent = sim.completions()[-1].json
    assert sent["max_completion_tokens"] == 60 and "max_tokens" not in sent
    assert sent["messages"][0]["role"] == "developer"


def test_other_models_are_not_adapted(gateway, sim):
    raw_body = {"messages": [{"role": "system", "content": "x"}, *HELLO], "max_tokens": 5}
    gateway.openai().chat.completions.create(model="gpt-4o", **raw_body)
    sent = sim.completions()[-1].json
    assert sent["max_tokens"] == 5 and sent["messages"][0]["role"] == "system"


def test_max_tokens_above_the_model_limit_is_clamped(gateway, sim):
    """claude-3-haiku writes at most 4,096 tokens: asking for more is clamped, not refused."""
    gateway.anthropic().messages.create(
        model="claude-3-haiku",
        max_tokens=20_000,
        messages=HELLO,  # the SDK's non-stream cap
    )
    gateway.openai().chat.completions.create(
        model="claude-3-haiku", max_tokens=100_000, messages=HELLO
    )
    assert [r.json["max_tokens"] for r in sim.completions()] == [4096, 4096]


def test_a_model_without_price_takes_the_catalogs(gateway, sim):
    model = gateway.state.snapshot.models["o1"]
    assert model.price_source == "catalog"
    assert (model.price.input_per_1k, model.price.output_per_1k) == (
        Decimal("0.015"),
        Decimal("0.06"),
    )
    raw = gateway.openai().chat.completions.with_raw_response.create(model="o1", messages=HELLO)
    usage = Usage.from_openai(raw.parse().usage.model_dump())
    assert raw.headers["x-llm-cost-usd"] == format_usd(cost(model.price, usage))


def test_openai_models_list_carries_capabilities(gateway):
    entries = {m.id: m for m in gateway.openai().models.list()}
    caps = entries["o1-preview"].model_extra["capabilities"]
    assert caps["tools"] is False and caps["context_window"] == 128000
    assert entries["limited"].model_extra["capabilities"] == FLAGS_OFF
    assert entries["claude-3-haiku"].model_extra["capabilities"]["vision"] is True  # alias too
    assert "capabilities" in entries["gpt-4o"].model_extra


def test_anthropic_models_list_carries_names_and_dates(gateway):
    entries = {m.id: m for m in gateway.anthropic().models.list()}
    haiku = entries["claude-3-haiku-20240307"]
    assert haiku.display_name == "Claude Haiku 3"
    assert haiku.created_at.date().isoformat() == "2024-03-13"
