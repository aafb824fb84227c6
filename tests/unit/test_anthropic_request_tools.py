"""Requests OpenAI <-> Anthropic: tools, tool_choice, images and documents, and Anthropic -> OpenAI.

Every output is validated against the kit's schema for the vendor it is sent to.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from proxy.errors import GatewayError
from proxy.providers.anthropic.request import anthropic_to_openai
from tests.unit.anthropic_request_helpers import KIT, chat, rejected, sample, to_anthropic, user

OPENAI_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/openai/chat.completions.request.schema.json").read_text())
)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai(body, upstream_model="gpt-4o")
    OPENAI_REQUEST.validate(out)
    return out


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


# -- images and documents -------------------------------------------------------------------


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
