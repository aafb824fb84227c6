"""Non-streaming responses Anthropic <-> OpenAI: the kit's sample pair, stop reasons, usage."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import openai.types.chat
import pytest
from jsonschema import Draft202012Validator

from proxy.pricing import Usage
from proxy.providers.anthropic.response import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from tests.kit import KIT

OPENAI_RESPONSE = Draft202012Validator(
    json.loads((KIT / "schemas/openai/chat.completions.response.schema.json").read_text())
)
ANTHROPIC_RESPONSE = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/messages.response.schema.json").read_text())
)
CREATED = 1764061200


def sample(path: str) -> dict[str, Any]:
    return json.loads((KIT / "samples" / path).read_text())


def to_openai(resp: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai_response(resp, created=CREATED)
    OPENAI_RESPONSE.validate(out)
    openai.types.chat.ChatCompletion.model_validate(out)  # the SDK a client would parse with
    return out


def to_anthropic(resp: dict[str, Any]) -> dict[str, Any]:
    out = openai_to_anthropic_response(resp)
    ANTHROPIC_RESPONSE.validate(out)
    anthropic.types.Message.model_validate(out)
    return out


def message(content: list[dict[str, Any]], stop: str | None = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }


def completion(msg: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, **msg},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


def test_anthropic_sample_to_openai() -> None:
    resp = sample("anthropic/messages.response.tool_use.json")
    out = to_openai(resp)
    expected = sample("openai/chat.response.tool_calls.json")
    assert (out["id"], out["model"], out["created"]) == (resp["id"], resp["model"], CREATED)
    choice = out["choices"][0]
    assert choice["finish_reason"] == expected["choices"][0]["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == resp["content"][0]["text"]
    calls = choice["message"]["tool_calls"]
    want = expected["choices"][0]["message"]["tool_calls"]
    # Anthropic's compact JSON matches OpenAI's byte for byte; ids are kept as sent.
    assert [c["function"] for c in calls] == [c["function"] for c in want]
    assert [c["id"] for c in calls] == [b["id"] for b in resp["content"][1:]]
    assert out["usage"] == {
        "prompt_tokens": 412 + 1210,
        "completion_tokens": 121,
        "total_tokens": 412 + 1210 + 121,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1210},
    }


def test_openai_sample_to_anthropic() -> None:
    resp = sample("openai/chat.response.tool_calls.json")
    out = to_anthropic(resp)
    expected = sample("anthropic/messages.response.tool_use.json")
    assert (out["id"], out["model"]) == (resp["id"], resp["model"])
    assert out["stop_reason"] == "tool_use" and out["stop_sequence"] is None
    uses = out["content"]  # content null: no text block
    want = [b for b in expected["content"] if b["type"] == "tool_use"]
    assert [(b["type"], b["name"], b["input"]) for b in uses] == [
        (b["type"], b["name"], b["input"]) for b in want
    ]
    assert [b["id"] for b in uses] == [c["id"] for c in resp["choices"][0]["message"]["tool_calls"]]
    assert out["usage"] == {
        "input_tokens": 1893 - 1664,
        "cache_read_input_tokens": 1664,
        "cache_creation_input_tokens": 0,
        "output_tokens": 58,
    }


@pytest.mark.parametrize("path", ["anthropic/messages.response.tool_use.json"])
def test_usage_prices_the_same_on_both_sides(path: str) -> None:
    resp = sample(path)
    there = to_openai(resp)
    back = to_anthropic(there)
    assert Usage.from_openai(there["usage"]) == Usage.from_anthropic(resp["usage"])
    assert Usage.from_anthropic(back["usage"]) == Usage.from_anthropic(resp["usage"])


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons_to_openai(stop: str, finish: str) -> None:
    resp = message([{"type": "text", "text": "x"}], stop)
    if stop == "something_new":  # the schema's enum does not know it yet; the map must
        assert (
            anthropic_to_openai_response(resp, created=1)["choices"][0]["finish_reason"] == finish
        )
        return
    assert to_openai(resp)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons_to_anthropic(finish: str, stop: str) -> None:
    assert to_anthropic(completion({"content": "x"}, finish))["stop_reason"] == stop


def test_thinking_is_dropped_and_only_tool_calls_mean_null_content() -> None:
    out = to_openai(
        message(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            ],
            "tool_use",
        )
    )
    assert out["choices"][0]["message"]["content"] is None
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_text_blocks_are_joined() -> None:
    out = to_openai(message([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))
    assert out["choices"][0]["message"]["content"] == "ab"
    assert "tool_calls" not in out["choices"][0]["message"]


def test_reasoning_tokens_both_ways() -> None:
    resp = message([{"type": "text", "text": "x"}])
    resp["usage"]["output_tokens_details"] = {"thinking_tokens": 3}
    there = to_openai(resp)
    assert there["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert to_anthropic(there)["usage"]["output_tokens_details"] == {"thinking_tokens": 3}


def test_openai_tool_call_arguments_that_are_not_json_are_kept() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": tru'}}
    out = to_anthropic(completion({"content": None, "tool_calls": [call]}, "tool_calls"))
    assert out["content"][0]["input"] == {"_raw_arguments": '{"a": tru'}


def test_openai_stop_with_tool_calls_is_tool_use_and_text_comes_first() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    out = to_anthropic(completion({"content": "On it.", "tool_calls": [call]}, "stop"))
    assert out["stop_reason"] == "tool_use"
    assert [b["type"] for b in out["content"]] == ["text", "tool_use"]
    assert out["content"][1]["input"] == {}


def test_openai_refusal_becomes_text() -> None:
    out = to_anthropic(completion({"content": None, "refusal": "I can't."}, "content_filter"))
    assert out["content"] == [{"type": "text", "text": "I can't."}]
    assert out["stop_reason"] == "refusal"
