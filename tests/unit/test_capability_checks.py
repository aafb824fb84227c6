"""What a request needs, per dialect, and the checks and adjustments made from it."""

from __future__ import annotations

from decimal import Decimal

import orjson

from proxy.capabilities.checks import adjust, refusal
from proxy.capabilities.model import UNKNOWN, Capabilities
from proxy.capabilities.needs import CHARS_PER_TOKEN, Needs, needs_of, register
from proxy.config.snapshot import ModelConfig
from proxy.pricing import Price


def model(**caps: object) -> ModelConfig:
    return ModelConfig("m", "p", "m", Price(Decimal(1), Decimal(1)),
                       capabilities=Capabilities.merged(caps))  # fmt: skip


def test_openai_needs() -> None:
    needs = needs_of(
        "openai",
        {
            "messages": [
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [
                    {"type": "text", "text": "abcdef"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ]},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            "stream": True,
            "max_completion_tokens": 7,
            "reasoning_effort": "low",
        },
    )  # fmt: skip
    assert needs == Needs(True, True, True, True, True, True, 7, len("rules") + 6)


def test_anthropic_needs_including_nested_tool_result_images() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}
    body = {
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [image]},
            ]},
        ],
        "max_tokens": 9,
    }  # fmt: skip
    needs = needs_of("anthropic", body)
    assert needs.vision and needs.system_prompt and not needs.tools
    assert needs.max_tokens == 9 and needs.text_chars == 3


def test_responses_needs() -> None:
    body = {
        "instructions": "rules",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "abcdef"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
            ]},
            {"type": "function_call_output", "call_id": "c", "output": "xyz"},
        ],
        "tools": [{"type": "function", "name": "f"}],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        "stream": True,
        "max_output_tokens": 7,
        "reasoning": {"effort": "low"},
    }  # fmt: skip
    needs = needs_of("responses", body)
    assert needs == Needs(True, True, True, True, True, True, 7, len("rules") + 6 + 3)
    plain = needs_of("responses", {"input": "hello"})
    assert plain is not None and plain.text_chars == 5 and not plain.system_prompt


def test_an_unknown_dialect_checks_nothing_and_readers_are_pluggable() -> None:
    assert needs_of("no-such-dialect", {"input": "hi"}) is None
    register("test-dialect", lambda body: Needs(tools=True))
    assert needs_of("test-dialect", {}).tools


def test_unknown_never_refuses() -> None:
    needs = Needs(True, True, True, True, True, True, 10**9, 10**9)
    assert refusal(model(), needs) is None
    assert model().capabilities is UNKNOWN


def test_refusal_names_capability_and_model() -> None:
    capability, error = refusal(model(tools=True, vision=False), Needs(tools=True, vision=True))
    assert capability == "vision" and error.status == 400
    assert "'vision'" in error.message and "'m'" in error.message


def test_context_estimate_errs_towards_letting_through() -> None:
    limited = model(context_window=1000, max_output_tokens=100)
    fits = Needs(text_chars=900 * CHARS_PER_TOKEN, max_tokens=100)
    assert refusal(limited, fits) is None
    # max_tokens is clamped to max_output_tokens before the sum
    assert refusal(limited, Needs(text_chars=900 * CHARS_PER_TOKEN, max_tokens=5000)) is None
    capability, error = refusal(limited, Needs(text_chars=901 * CHARS_PER_TOKEN, max_tokens=100))
    assert capability == "context_window" and error.code == "context_length_exceeded"


def test_adjust_passes_untouched_bytes_through() -> None:
    raw = b'{"model":"m","max_tokens":5}'
    assert adjust(raw, "openai", model(max_output_tokens=10), Needs(max_tokens=5)) is raw
    assert adjust(raw, "openai", model(), None) is raw


def test_adjust_clamps_and_adapts() -> None:
    o1 = model(max_output_tokens=10, token_param="max_completion_tokens", system_role="developer")
    raw = orjson.dumps({"messages": [{"role": "system", "content": "s"}], "max_tokens": 50})
    out = orjson.loads(adjust(raw, "openai", o1, Needs(max_tokens=50)))
    assert out == {"messages": [{"role": "developer", "content": "s"}], "max_completion_tokens": 10}
    anthropic_wire = orjson.loads(adjust(raw, "anthropic", o1, Needs(max_tokens=50)))
    assert anthropic_wire["max_tokens"] == 10  # no OpenAI adaptation on another wire
