"""The Responses dialect's pure translators (request -> unified, unified answer -> ``response``)
and the hub's choice between pass-through and translation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.engine.dialects import RESPONSES, native_target, upstream_body
from proxy.errors import GatewayError
from proxy.providers.openai import OpenAIVendor
from proxy.providers.registry import vendor_for
from proxy.providers.responses.request import responses_to_unified, validate_responses_request
from proxy.providers.responses.response import unified_to_responses, usage_from_responses
from proxy.sim.schemas import openapi_schema
from tests.kit import KIT

RESPONSE = Draft202012Validator(
    openapi_schema(json.loads((KIT / "schemas/openai/responses.response.schema.json").read_text()))
)
TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}


def test_string_input_and_instructions() -> None:
    body = {"model": "m", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 9}
    unified = responses_to_unified(body)
    assert unified["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert unified["max_tokens"] == 9 and unified["model"] == "m"


def test_items_two_tool_turns_images_and_parameters() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            ]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "calling", "annotations": []}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{\"a\":1}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "two"}]},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
        "reasoning": {"effort": "low"},
        "temperature": 0.5,
        "store": False,
        "stream": True,
    }  # fmt: skip
    unified = responses_to_unified(body)
    user, assistant, tool1, tool2 = unified["messages"]
    assert user["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/y.png", "detail": "low"},
    }
    assert assistant["content"] == "calling"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert tool1 == {"role": "tool", "tool_call_id": "c1", "content": "one"}
    assert tool2["content"] == "two"
    assert unified["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                          "strict": False}}
    ]  # fmt: skip
    assert unified["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert unified["response_format"]["json_schema"]["name"] == "s"
    assert unified["reasoning_effort"] == "low" and unified["temperature"] == 0.5
    assert unified["stream"] is True and "store" not in unified


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": {"id": "conv_1"}}, "conversation"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"tools": [TOOL, {"type": "computer_use_preview"}]}, "tools[1]"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].id"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input[0].content[0].file_id"),
        ({"input": [{"type": "web_search_call", "id": "ws", "status": "completed"}]},
         "input[0].type"),
    ],
)  # fmt: skip
def test_what_needs_provider_state_is_a_400_naming_the_parameter(extra: Any, param: str) -> None:
    body = {"model": "m", "input": "hi", **extra}
    validate_responses_request(body)  # the cheap check lets them by: pass-through may serve them
    with pytest.raises(GatewayError) as raised:
        responses_to_unified(body)
    assert raised.value.status == 400 and raised.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": ["x"]}, "input[0]"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "m", "input": "x", "tools": {}}, "tools"),
    ],
)
def test_malformed_requests_name_the_field(body: Any, param: str) -> None:
    with pytest.raises(GatewayError) as raised:
        validate_responses_request(body)
    assert raised.value.param == param


def test_unified_answer_as_a_schema_valid_response_object() -> None:
    unified = json.loads((KIT / "samples/openai/chat.response.tool_calls.json").read_text())
    unified["usage"]["cost"] = 0.5
    response = unified_to_responses(unified)
    RESPONSE.validate(response)
    kinds = [item["type"] for item in response["output"]]
    assert kinds.count("function_call") == len(unified["choices"][0]["message"]["tool_calls"])
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert calls[0]["call_id"] == unified["choices"][0]["message"]["tool_calls"][0]["id"]
    usage = response["usage"]
    assert usage["input_tokens"] == unified["usage"]["prompt_tokens"] and usage["cost"] == 0.5
    cached = unified["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert usage_from_responses(usage).cached_tokens == cached
    assert response["id"] == unified_to_responses(unified)["id"]  # derived, not random


def test_truncated_answer_is_incomplete() -> None:
    unified = {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": "ab"}, "finish_reason": "length"}],
    }
    response = unified_to_responses(unified)
    RESPONSE.validate(response)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


@dataclass(frozen=True)
class _Target:
    model: Any
    provider: Any
    vendor: Any
    upstream_model: str = "up"


def test_the_hub_passes_through_to_a_vendor_that_speaks_the_dialect() -> None:
    openai_target = native_target(RESPONSES, _Target(None, None, vendor_for("openai")))  # type: ignore[arg-type]
    assert openai_target.vendor.wire == RESPONSES
    body = {"model": "gpt", "input": "hi", "previous_response_id": "resp_1"}
    raw = orjson.dumps(body)
    sent, dropped = upstream_body(RESPONSES, body, raw, openai_target)  # type: ignore[arg-type]
    assert orjson.loads(sent) == {**body, "model": "up"} and dropped == []
    provider = type("P", (), {"base_url": "https://api.example/v1", "api_key": "k", "headers": {}})
    request = openai_target.vendor.chat_request(provider, sent, stream=False)
    assert request.url == "https://api.example/v1/responses"
    assert request.headers["authorization"] == "Bearer k"


def test_other_vendors_and_openai_compatible_servers_get_a_translation_azure_does_not() -> None:
    anthropic_target = _Target(None, None, vendor_for("anthropic"))
    assert native_target(RESPONSES, anthropic_target) is anthropic_target  # type: ignore[arg-type]

    class Compatible(OpenAIVendor):
        pass

    compatible = _Target(None, None, Compatible())
    assert native_target(RESPONSES, compatible) is compatible  # type: ignore[arg-type]
    local = _Target(None, None, vendor_for("openai_compatible"))
    assert native_target(RESPONSES, local) is local  # type: ignore[arg-type]
    azure = native_target(RESPONSES, _Target(None, None, vendor_for("azure_openai")))  # type: ignore[arg-type]
    assert azure.vendor.wire == RESPONSES
    openai_chat = _Target(None, None, vendor_for("openai"))
    assert native_target("openai", openai_chat) is openai_chat  # type: ignore[arg-type]
