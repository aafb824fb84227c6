"""Requests OpenAI <-> Anthropic on the vendor kit's samples, every output schema-validated."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from proxy.errors import ErrorType, GatewayError
from proxy.providers.anthropic.request import (
    anthropic_to_openai,
    openai_to_anthropic,
    validate_messages_request,
)

KIT = Path(__file__).resolve().parents[2].parent / "shared" / "vendor"
ANTHROPIC_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/messages.request.schema.json").read_text())
)
OPENAI_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/openai/chat.completions.request.schema.json").read_text())
)
MODEL = "claude-sonnet-4-5-20250929"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def sample(path: str) -> dict[str, Any]:
    return json.loads((KIT / "samples" / path).read_text())


def to_anthropic(body: dict[str, Any], drop: bool = False) -> tuple[dict[str, Any], list[str]]:
    out, dropped = openai_to_anthropic(
        body, upstream_model=MODEL, default_max_tokens=4096, drop_unsupported=drop
    )
    ANTHROPIC_REQUEST.validate(out)
    return out, dropped


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai(body, upstream_model="gpt-4o")
    OPENAI_REQUEST.validate(out)
    return out


def chat(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **params}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def rejected(body: dict[str, Any], drop: bool = False) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        to_anthropic(body, drop)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert caught.value.status == 400
    return caught.value


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


# -- Anthropic -> OpenAI on the samples ----------------------------------------------------


def test_anthropic_sample_matches_the_openai_sample() -> None:
    out = to_openai(sample("anthropic/messages.request.json"))
    expected = sample("openai/chat.request.json")
    for message in expected["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            part.get("image_url", {}).pop("detail", None)  # Anthropic has no detail
    assert out["messages"] == expected["messages"]
    for tool in expected["tools"]:
        tool["function"].pop("strict")
    assert out["tools"] == expected["tools"]
    assert out["tool_choice"] == "auto"
    assert out["max_completion_tokens"] == expected["max_completion_tokens"]
    assert out["stop"] == expected["stop"]
    assert out["safety_identifier"] == expected["user"]
    assert out["temperature"] == expected["temperature"]


def test_anthropic_tool_results_sample_to_openai() -> None:
    out = to_openai(sample("anthropic/messages.request.tool_results.json"))
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    assistant = out["messages"][2]
    assert assistant["content"] == "I'll look up both."
    assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        {"location": "Paris, France", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    assert [m["tool_call_id"] for m in out["messages"][3:5]] == [
        c["id"] for c in assistant["tool_calls"]
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False
    assert out["max_completion_tokens"] == 256


def test_anthropic_stream_asks_for_usage() -> None:
    body = {**sample("anthropic/messages.request.json"), "stream": True}
    out = to_openai(body)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


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


def test_images_and_documents() -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    body = chat(
        user(
            [
                {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "http://example.com/a.gif"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}},
            ]
        )
    )
    blocks = to_anthropic(body)[0]["messages"][0]["content"]
    assert blocks[0]["source"] == {"type": "base64", "media_type": "image/jpeg", "data": PNG}
    assert blocks[1]["source"] == {"type": "url", "url": "http://example.com/a.gif"}
    assert blocks[2] == {
        "type": "document",
        "title": "a.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
    }


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG}"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "file", "file": {"file_id": "file-abc"}},
            "messages[0].content[0].file.file_data",
        ),
        (
            {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}},
            "messages[0].content[0].file.file_data",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages[0].content[0].type",
        ),
    ],
)
def test_untranslatable_parts_are_rejected(part: dict[str, Any], param: str) -> None:
    error = rejected(chat(user([part])))
    assert error.param == param


# -- tools ------------------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b", "description": "B"}},
]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", False, {"type": "none"}),
        ({"type": "function", "function": {"name": "b"}}, None, {"type": "tool", "name": "b"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    out, _ = to_anthropic(
        chat(user("x"), tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel)
    )
    assert out.get("tool_choice") == expected
    assert out["tools"][1] == {
        "name": "b",
        "description": "B",
        "input_schema": {"type": "object", "properties": {}},
    }


def test_allowed_tools_sends_only_those() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "b"}}],
        },
    }
    out, _ = to_anthropic(chat(user("x"), tools=TOOLS, tool_choice=choice))
    assert [t["name"] for t in out["tools"]] == ["b"]
    assert out["tool_choice"] == {"type": "any"}


def test_tool_choice_without_tools_is_dropped() -> None:
    out, _ = to_anthropic(chat(user("x"), tool_choice="required", parallel_tool_calls=False))
    assert "tool_choice" not in out and "tools" not in out


def test_custom_tools_are_rejected() -> None:
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    assert rejected(chat(user("x"), tools=[custom])).param == "tools[0].type"


def test_legacy_functions() -> None:
    body = chat(
        user("x"),
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "a", "arguments": '{"q": 1}'},
        },
        {"role": "function", "name": "a", "content": "42"},
        functions=[{"name": "a", "parameters": {"type": "object"}}],
        function_call={"name": "a"},
    )
    out, _ = to_anthropic(body)
    use = out["messages"][1]["content"][0]
    assert use == {"type": "tool_use", "id": "toolu_legacy_1", "name": "a", "input": {"q": 1}}
    assert out["messages"][2]["content"][0]["tool_use_id"] == "toolu_legacy_1"
    assert out["tool_choice"] == {"type": "tool", "name": "a"}


# -- Anthropic -> OpenAI details ------------------------------------------------------------


def anthropic(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": list(messages), **params}


def test_anthropic_only_parameters_are_dropped() -> None:
    body = anthropic(
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        },
        top_k=5,
        thinking={"type": "enabled", "budget_tokens": 2048},
        system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
    )
    out = to_openai(body)
    assert out["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi"},
    ]
    assert "top_k" not in out and "thinking" not in out


def test_anthropic_assistant_thinking_is_dropped_and_tool_results_flagged() -> None:
    body = anthropic(
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": [1]}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "is_error": True,
                    "content": "boom",
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        },
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    out = to_openai(body)
    assert out["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"x":[1]}'},
            }
        ],
    }
    assert out["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "Error: boom",
    }
    assert out["messages"][3]["content"][0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert (out["tool_choice"], out["parallel_tool_calls"]) == ("required", False)


def test_anthropic_to_openai_rejects_what_openai_cannot_take() -> None:
    with pytest.raises(GatewayError) as caught:
        to_openai(anthropic({"role": "user", "content": "x"}, stop_sequences=list("abcde")))
    assert caught.value.param == "stop_sequences"
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    with pytest.raises(GatewayError) as caught:
        to_openai(anthropic({"role": "user", "content": "x"}, tools=[server_tool]))
    assert caught.value.param == "tools[0].type"


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
