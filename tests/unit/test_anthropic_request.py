"""Requests OpenAI -> Anthropic: the kit's samples, parameters, messages, and the inbound check.

Every output is validated against the kit's schema. Tools, images and the reverse direction
are in test_anthropic_request_tools.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proxy.errors import ErrorType, GatewayError
from proxy.providers.anthropic.request import validate_messages_request
from tests.unit.anthropic_request_helpers import chat, rejected, sample, to_anthropic, user


def tool_essentials(tools: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(t["name"], t.get("description"), t["input_schema"]) for t in tools]


# -- OpenAI -> Anthropic on the samples ----------------------------------------------------


def test_sample_request_matches_the_anthropic_sample() -> None:
    out, dropped = to_anthropic(sample("openai/chat.request.json"))
    expected = sample("anthropic/messages.request.json")
    assert dropped == []
    # The kit's system carries cache_control (a choice of its author); the text is the essence.
    assert out["system"] == expected["system"][0]["text"]
    assert out["messages"] == expected["messages"]
    assert tool_essentials(out["tools"]) == tool_essentials(expected["tools"])
    for key in (
        "model",
        "max_tokens",
        "tool_choice",
        "temperature",
        "stop_sequences",
        "metadata",
        "stream",
    ):
        assert out[key] == expected[key], key
    assert "top_p" not in out  # top_p: 1 is a no-op, and some Claude models refuse it
    assert all(tool["strict"] is True for tool in out["tools"])  # ToolParam.strict in the SDK


def test_tool_results_sample_matches_the_anthropic_sample() -> None:
    out, _ = to_anthropic(sample("openai/chat.request.tool_results.json"))
    expected = sample("anthropic/messages.request.tool_results.json")
    assert out["system"] == expected["system"]  # developer message hoisted, joined by \n
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0] == expected["messages"][0]
    uses = out["messages"][1]["content"]
    want = [b for b in expected["messages"][1]["content"] if b["type"] == "tool_use"]
    assert [(b["name"], b["input"]) for b in uses] == [(b["name"], b["input"]) for b in want]
    assert [b["id"] for b in uses] == [
        "call_8wKm3Qp1ZsT7uVx2Yb4Nc6Dd",
        "call_Hq5Lr9Jt2Wm7Xe1Pa3Sv8Kb0",
    ]
    results = out["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
    assert [b["tool_use_id"] for b in results[:2]] == [b["id"] for b in uses]
    assert results[2] == expected["messages"][2]["content"][2]
    assert out["tool_choice"] == expected["tool_choice"]
    assert out["max_tokens"] == expected["max_tokens"] == 256


def test_stream_sample_keeps_stream_and_drops_stream_options() -> None:
    out, dropped = to_anthropic(sample("openai/chat.request.stream.json"))
    assert out["stream"] is True
    assert "stream_options" not in out and dropped == []
    assert out["max_tokens"] == 4096  # neither max_tokens field: the configured default


# -- unsupported parameters -----------------------------------------------------------------

NON_NEUTRAL = [
    ("n", 2),
    ("logprobs", True),
    ("top_logprobs", 3),
    ("logit_bias", {"50256": -100}),
    ("seed", 7),
    ("presence_penalty", 0.5),
    ("frequency_penalty", -0.2),
    ("prediction", {"type": "content", "content": "x"}),
    ("audio", {"voice": "alloy"}),
    ("modalities", ["text", "audio"]),
    ("store", True),
    ("metadata", {"k": "v"}),
    ("prompt_cache_key", "tenant-1"),
    ("web_search_options", {}),
    ("verbosity", "low"),
    ("response_format", {"type": "json_object"}),
    ("service_tier", "flex"),
    ("reasoning_effort", "high"),
    ("some_future_param", 1),
]
NEUTRAL = [
    ("n", 1),
    ("logprobs", False),
    ("top_logprobs", 0),
    ("logit_bias", {}),
    ("seed", None),
    ("presence_penalty", 0),
    ("frequency_penalty", 0.0),
    ("prediction", None),
    ("audio", None),
    ("modalities", ["text"]),
    ("store", False),
    ("metadata", {}),
    ("verbosity", "medium"),
    ("response_format", {"type": "text"}),
    ("some_future_param", None),
    ("stream_options", {"include_usage": True}),
    ("parallel_tool_calls", True),
]


@pytest.mark.parametrize(("name", "value"), NON_NEUTRAL)
def test_unsupported_parameter_is_a_400_naming_it(name: str, value: Any) -> None:
    error = rejected(chat(user("hi"), **{name: value}))
    assert error.param == name
    assert f"'{name}'" in error.message


@pytest.mark.parametrize(("name", "value"), NON_NEUTRAL)
def test_drop_unsupported_drops_and_reports(name: str, value: Any) -> None:
    out, dropped = to_anthropic(chat(user("hi"), **{name: value}), drop=True)
    assert dropped == [name]
    assert name not in out or (name == "metadata" and "k" not in out["metadata"])


@pytest.mark.parametrize(("name", "value"), NEUTRAL)
def test_neutral_values_are_dropped_silently(name: str, value: Any) -> None:
    out, dropped = to_anthropic(chat(user("hi"), **{name: value}))
    assert dropped == []
    assert name not in out


def test_every_unsupported_parameter_is_named() -> None:
    error = rejected(chat(user("hi"), n=3, seed=1, logprobs=True))
    assert error.param == "n"
    assert all(f"'{name}'" in error.message for name in ("n", "seed", "logprobs"))


@pytest.mark.parametrize("temperature", [1.01, 2, -0.1])
def test_temperature_out_of_anthropic_range_is_rejected(temperature: float) -> None:
    error = rejected(chat(user("hi"), temperature=temperature))
    assert error.param == "temperature"
    # Not an "unsupported parameter": dropping would silently change sampling.
    assert rejected(chat(user("hi"), temperature=temperature), drop=True).param == "temperature"


def test_sampling_parameters() -> None:
    out, _ = to_anthropic(chat(user("hi"), temperature=1, top_p=0.9, top_k=40, stop="END"))
    assert (out["temperature"], out["top_p"], out["top_k"]) == (1, 0.9, 40)
    assert out["stop_sequences"] == ["END"]
    out, _ = to_anthropic(chat(user("hi"), stop=["  ", "\n\nUser:"]))
    assert out["stop_sequences"] == ["\n\nUser:"]  # Anthropic refuses whitespace-only ones


def test_max_tokens_precedence() -> None:
    both = chat(user("hi"), max_completion_tokens=100, max_tokens=50)
    assert to_anthropic(both)[0]["max_tokens"] == 100
    assert to_anthropic(chat(user("hi"), max_tokens=50))[0]["max_tokens"] == 50
    assert rejected(chat(user("hi"), max_tokens="many")).param == "max_tokens"


def test_user_and_safety_identifier() -> None:
    assert to_anthropic(chat(user("hi"), user="u1"))[0]["metadata"] == {"user_id": "u1"}
    out, _ = to_anthropic(chat(user("hi"), user="u1", safety_identifier="s1"))
    assert out["metadata"] == {"user_id": "s1"}


def test_json_schema_response_format_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    out, _ = to_anthropic(chat(user("hi"), response_format=fmt))
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


# -- messages ---------------------------------------------------------------------------------


def test_same_role_turns_merge_and_empty_content_is_dropped() -> None:
    body = chat(
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        user("one"),
        user([{"type": "text", "text": "two"}, {"type": "text", "text": "  "}]),
        {"role": "assistant", "content": ""},
        user(""),
        {"role": "system", "content": "Late rule."},
        user("three"),
        {"role": "assistant", "content": "Sure.  "},
    )
    out, _ = to_anthropic(body)
    assert out["system"] == "Be brief.\nLate rule."
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "text", "text": "three"},
            ],
        },
        {"role": "assistant", "content": "Sure."},  # a final prefill may not end in spaces
    ]


def test_tool_results_come_first_in_the_user_turn() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    body = chat(
        user("go"),
        {"role": "assistant", "content": "Calling.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "r"}]},
        user("and?"),
    )
    out, _ = to_anthropic(body)
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
    ]
    assert out["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": [{"type": "text", "text": "r"}],
        },
        {"type": "text", "text": "and?"},
    ]


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]", '"text"', '{"a": '])
def test_bad_tool_arguments_are_rejected(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    error = rejected(chat(user("x"), {"role": "assistant", "content": None, "tool_calls": [call]}))
    assert error.param == "messages[1].tool_calls[0].function.arguments"


# -- inbound /v1/messages check -------------------------------------------------------------


def test_valid_messages_requests_pass() -> None:
    validate_messages_request(sample("anthropic/messages.request.json"))
    validate_messages_request(sample("anthropic/messages.request.tool_results.json"))


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(sample("anthropic/messages.request.json"))
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        ("model", _DELETE, "model"),
        ("model", 3, "model"),
        ("max_tokens", _DELETE, "max_tokens"),
        ("max_tokens", 0, "max_tokens"),
        ("max_tokens", True, "max_tokens"),
        ("messages", [], "messages"),
        ("messages.0.role", "system", "messages[0].role"),
        ("messages.0.content", 5, "messages[0].content"),
        ("messages.0.content.1", "text", "messages[0].content[1]"),
        ("system", 5, "system"),
        ("stream", "yes", "stream"),
        ("tools", {}, "tools"),
        ("tools.0", {"description": "no name"}, "tools[0]"),
        ("temperature", "hot", "temperature"),
        ("stop_sequences", [1], "stop_sequences"),
    ],
)
def test_invalid_messages_requests_name_the_field(path: str, value: Any, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        validate_messages_request(_with(path, value))
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert caught.value.param == param


def test_non_object_body_is_rejected() -> None:
    with pytest.raises(GatewayError):
        validate_messages_request([])
