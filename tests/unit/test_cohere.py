"""Cohere v2 chat translators (MAPPING §9), on the kit's samples and against the schema derived
from Cohere's OpenAPI description."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.errors import ErrorType, GatewayError
from proxy.pricing import Usage
from proxy.providers.cohere.errors import error_from_cohere
from proxy.providers.cohere.request import to_cohere
from proxy.providers.cohere.response import to_unified
from proxy.providers.cohere.stream import CohereToUnifiedStream
from proxy.sim import cohere as sim_cohere
from proxy.sim.faults import kit_dir
from proxy.sse import SSEParser
from tests.unit.test_cohere_roundtrip import ev

KIT = kit_dir()
SAMPLES = KIT / "samples" / "cohere"
JSON = dict[str, Any]


def sample(name: str) -> Any:
    return orjson.loads((SAMPLES / name).read_bytes())


def validator(name: str) -> Draft202012Validator:
    schema = orjson.loads((KIT / "schemas" / "cohere" / f"{name}.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


REQUEST = validator("chat.v2.request")
RESPONSE = validator("chat.v2.response")
EVENT = validator("chat.v2.stream-event")


def cohere(body: JSON, drop: bool = False) -> JSON:
    out, _ = to_cohere(body, upstream_model="command-a-03-2025", drop_unsupported=drop)
    assert not list(REQUEST.iter_errors(out)), list(REQUEST.iter_errors(out))[:1]
    return out


def feed_sse(raw: bytes, translator: CohereToUnifiedStream) -> list[JSON]:
    out: list[JSON] = []
    for event in SSEParser().feed(raw):
        if event.data == b"[DONE]":
            assert translator.done  # Cohere's trailer comes after message-end
            continue
        payload = orjson.loads(event.data)
        out += [chunk for _, chunk in translator.feed(event.name or payload.get("type"), payload)]
    return out


def unified_sample_request() -> JSON:
    """The kit's Cohere sample request as an OpenAI client would send it."""
    body = sample("chat.v2.request.json")
    return {
        "model": "my-cohere",
        "messages": body["messages"],
        "tools": body["tools"],
        "max_tokens": 1024,
        "temperature": 0.3,
        "top_p": 0.75,
        "top_k": 0,
        "stop": "\n\nUser:",
        "stream": False,
    }


# --- the kit's samples ---------------------------------------------------------------------


def test_the_kit_samples_validate_against_the_derived_schemas() -> None:
    assert not list(REQUEST.iter_errors(sample("chat.v2.request.json")))
    assert not list(RESPONSE.iter_errors(sample("chat.v2.response.json")))
    for event in SSEParser().feed((SAMPLES / "chat.v2.stream.sse").read_bytes()):
        if event.data != b"[DONE]":
            assert not list(EVENT.iter_errors(orjson.loads(event.data)))


def test_request_sample_is_what_the_unified_request_becomes() -> None:
    assert cohere(unified_sample_request()) == sample("chat.v2.request.json")


def test_response_sample_surfaces_the_plan_before_the_tool_calls() -> None:
    out = to_unified(sample("chat.v2.response.json"), created=7)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I will look up the weather and the local time in Paris."
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_local_time"]
    assert calls[0]["id"] == "get_weather_hgxxmkby3wta"
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"timezone": "Europe/Paris"}
    # billed_units, not tokens (which also count the prompt template Cohere does not bill)
    assert out["usage"] == {"prompt_tokens": 127, "completion_tokens": 69, "total_tokens": 196}


def test_stream_sample_becomes_unified_chunks_with_usage_last() -> None:
    translator = CohereToUnifiedStream(created=7)
    chunks = feed_sse((SAMPLES / "chat.v2.stream.sse").read_bytes(), translator)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Yes, take an umbrella."
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 40
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    assert {c["id"] for c in chunks} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}


def test_sample_error_maps_to_a_retryable_rate_limit() -> None:
    data = sample("errors/429.json")
    error = error_from_cohere(429, orjson.dumps(data["body"]), {"retry-after": "3"})
    assert error.type == ErrorType.RATE_LIMIT_EXCEEDED and error.retryable
    assert error.retry_after == "3" and error.message.startswith("You are using a Trial key")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, ErrorType.INVALID_REQUEST, False),
        (401, ErrorType.INVALID_API_KEY, False),
        (402, ErrorType.PROVIDER_ERROR, False),
        (403, ErrorType.PROVIDER_ERROR, False),
        (404, ErrorType.MODEL_NOT_FOUND, False),
        (422, ErrorType.INVALID_REQUEST, False),
        (429, ErrorType.RATE_LIMIT_EXCEEDED, True),
        (498, ErrorType.INVALID_API_KEY, False),
        (499, ErrorType.PROVIDER_ERROR, False),
        (500, ErrorType.PROVIDER_ERROR, True),
        (501, ErrorType.PROVIDER_ERROR, False),
        (503, ErrorType.PROVIDER_ERROR, True),
        (504, ErrorType.TIMEOUT, True),
    ],
)
def test_statuses_map_onto_the_taxonomy(status: int, kind: ErrorType, retryable: bool) -> None:
    body = orjson.dumps({"id": "e1", "message": f"status {status}"})
    error = error_from_cohere(status, body, {})
    assert (error.type, error.retryable, error.message) == (kind, retryable, f"status {status}")
    assert error.counts_against_provider == retryable
    assert error.overloaded == (status == 503)


def test_a_body_that_is_not_coheres_is_a_provider_error_not_a_bad_request() -> None:
    error = error_from_cohere(400, b"<html>bad gateway</html>", {})
    assert error.type == ErrorType.PROVIDER_ERROR and not error.retryable
    assert error_from_cohere(502, b"<html/>", {}).retryable


# --- requests ------------------------------------------------------------------------------


def base(**extra: Any) -> JSON:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Now."}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": 0.995}, "top_p"),
        ({"top_k": 501}, "top_k"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"frequency_penalty": 0.5, "presence_penalty": 0.5}, "presence_penalty"),
        ({"presence_penalty": -0.5}, "presence_penalty"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [{"type": "function", "function": {"name": "get-weather"}}]}, "tools[0]"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
    ],
)
def test_what_cohere_cannot_take_is_a_400_naming_it(extra: JSON, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        to_cohere(base(**extra), upstream_model="c", drop_unsupported=False)
    assert caught.value.type == ErrorType.INVALID_REQUEST
    assert (caught.value.param or "").startswith(param)


def test_drop_unsupported_params_drops_and_names_them() -> None:
    body = base(n=2, logprobs=True, parallel_tool_calls=False)
    out, dropped = to_cohere(body, upstream_model="c", drop_unsupported=True)
    assert dropped == ["n", "logprobs", "parallel_tool_calls"]
    assert set(out) == {"model", "messages"}


def test_sampling_and_neutral_values() -> None:
    out = cohere(
        base(
            top_p=1,
            frequency_penalty=0,
            presence_penalty=0.4,
            n=1,
            seed=7,
            user="u-1",
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=20,
        )
    )
    assert out == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 20,
        "seed": 7,
        "presence_penalty": 0.4,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("choice", "names", "cohere_choice"),
    [
        (None, ["get_weather", "get_time"], None),
        ("auto", ["get_weather", "get_time"], None),
        ("required", ["get_weather", "get_time"], "REQUIRED"),
        ("none", ["get_weather", "get_time"], "NONE"),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], "REQUIRED"),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"function": {"name": "get_time"}}]},
            },
            ["get_time"],
            None,
        ),
    ],
)
def test_tool_choice(choice: Any, names: list[str], cohere_choice: str | None) -> None:
    body = base(tools=[WEATHER, TIME])
    if choice is not None:
        body["tool_choice"] = choice
    out = cohere(body)
    assert [t["function"]["name"] for t in out["tools"]] == names
    assert out.get("tool_choice") == cohere_choice
    assert out["strict_tools"] is (True if "get_weather" in names else out["strict_tools"])
    assert "strict" not in orjson.dumps(out["tools"]).decode()  # per-tool strict: a 422
    time_tool = next(t for t in out["tools"] if t["function"]["name"] == "get_time")
    assert time_tool["function"]["parameters"] == {"type": "object", "properties": {}}


def test_conversation_roles_images_tool_plan_and_results() -> None:
    pixel = "data:image/png;base64,iVBORw0KGgo="
    body = base(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": pixel, "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": "I will look it up.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "9C"}]},
            {"role": "assistant", "content": None},
        ],
        tools=[WEATHER],
    )
    messages = cohere(body)["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": pixel, "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
            "tool_plan": "I will look it up.",
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "9C"},
    ]


def test_json_schema_response_format_becomes_cohere_json_object() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = base(response_format={"type": "json_schema", "json_schema": {"schema": schema}})
    assert cohere(body)["response_format"] == {"type": "json_object", "json_schema": schema}
    assert cohere(base(response_format={"type": "json_object"}))["response_format"] == {
        "type": "json_object"
    }


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA=="}},
        {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
    ],
)
def test_parts_cohere_cannot_read_are_a_400(part: JSON) -> None:
    with pytest.raises(GatewayError) as caught:
        to_cohere(
            base(messages=[{"role": "user", "content": [part]}]),
            upstream_model="c",
            drop_unsupported=True,
        )
    assert caught.value.param.startswith("messages[0].content[0]")


# --- responses and streams -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "kind"), [("ERROR", ErrorType.PROVIDER_ERROR), ("TIMEOUT", ErrorType.TIMEOUT)]
)
def test_a_failed_generation_is_an_error_not_an_answer(reason: str, kind: ErrorType) -> None:
    response = {"id": "x", "finish_reason": reason, "message": {"role": "assistant"}}
    with pytest.raises(GatewayError) as caught:
        to_unified(response, created=1)
    assert caught.value.type == kind
    translator = CohereToUnifiedStream(created=1)
    end = {"type": "message-end", "delta": {"finish_reason": reason}}
    out = translator.feed("message-end", end)
    assert translator.done and out[0][1]["error"]["type"] == str(kind)


def test_message_end_error_becomes_an_error_chunk() -> None:
    translator = CohereToUnifiedStream(created=1)
    translator.feed("message-start", {"type": "message-start", "id": "s"})
    (event,) = SSEParser().feed(sim_cohere.stream_error_event())
    (_, chunk), *_ = translator.feed(event.name, orjson.loads(event.data))
    assert translator.done and chunk["error"]["type"] == "provider_error"
    assert "internal server error" in chunk["error"]["message"]


def test_thinking_is_dropped_and_citations_kept_for_openai_clients() -> None:
    citation = {"start": 0, "end": 2, "text": "9C", "sources": [{"type": "tool", "id": "c:0"}]}
    response = {
        "id": "r",
        "finish_reason": "COMPLETE",
        "message": {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "9C"}],
            "citations": [citation],
        },
        "usage": {"tokens": {"input_tokens": 5, "output_tokens": 2}},  # no billed_units
    }
    assert not list(RESPONSE.iter_errors(response))
    message = to_unified(response, created=1)["choices"][0]["message"]
    assert message["content"] == "9C" and message["citations"] == [citation]
    assert to_unified(response, created=1)["usage"]["prompt_tokens"] == 5
    translator = CohereToUnifiedStream(created=1)
    events = [
        ev("content-start", {"content": {"type": "thinking", "thinking": ""}}, 0),
        ev("content-delta", {"content": {"thinking": "hm"}}, 0),
        ev("content-start", {"content": {"type": "text", "text": ""}}, 1),
        ev("content-delta", {"content": {"text": "9C"}}, 1),
        ev("citation-start", {"citations": citation}, 0),
    ]
    deltas = [c["choices"][0]["delta"] for e in events for _, c in translator.feed(None, e)]
    assert deltas == [{"content": "9C"}, {"citations": [citation]}]


# --- the sim and the schema generator ------------------------------------------------------


def test_the_fakes_field_list_is_the_derived_schemas() -> None:
    assert set(REQUEST.schema["properties"]) == sim_cohere.REQUEST_FIELDS


def test_the_generator_makes_plain_strict_json_schema() -> None:
    import yaml

    from proxy.sim.vendor.tools.derive_cohere_schemas import Deriver, _Yaml12Loader

    components = yaml.load(
        """
        Text: {type: object, required: [type], properties: {type: {enum: [text, json]},
               description: {type: string, description: prose}}}
        Json: {type: object, required: [type], properties: {type: {enum: [text, json]},
               schema: {type: object}}, description: prose, x-fern-type-name: J}
        Mode: {type: string, enum: [ON, OFF]}
        """,
        Loader=_Yaml12Loader,
    )
    root = {
        "oneOf": [{"$ref": "#/components/schemas/Text"}, {"$ref": "#/components/schemas/Json"}],
        "discriminator": {
            "propertyName": "type",
            "mapping": {"text": "#/components/schemas/Text", "json": "#/components/schemas/Json"},
        },
    }
    schema = Deriver(components, strict=True).root(root)
    assert components["Mode"]["enum"] == ["ON", "OFF"]  # YAML 1.1 would read OFF as false
    Draft202012Validator.check_schema(schema)
    check = Draft202012Validator(schema)
    assert check.is_valid({"type": "json", "schema": {"any": 1}})  # published oneOf: 2 matches
    assert not check.is_valid({"type": "text", "schema": {}})  # strict: unknown field
    assert check.is_valid({"type": "text", "description": "a property named description"})
    assert "x-fern-type-name" not in orjson.dumps(schema).decode()
    assert "prose" not in orjson.dumps(schema).decode()


def test_no_usage_at_all_is_unknown_not_free() -> None:
    from proxy.providers.cohere import VENDOR

    response = {"id": "r", "finish_reason": "COMPLETE", "message": {"role": "assistant"}}
    assert VENDOR.usage(response) is None
    assert to_unified(response, created=1)["usage"]["prompt_tokens"] is None
    assert VENDOR.usage({**response, "usage": {"billed_units": {"output_tokens": 3.0}}}) == Usage(
        completion_tokens=3
    )


def test_plan_then_text_reads_the_same_streamed_or_not() -> None:
    message = {
        "role": "assistant",
        "tool_plan": "Plan.",
        "content": [{"type": "text", "text": "Text."}],
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    response = {"id": "r", "finish_reason": "TOOL_CALL", "message": message}
    whole = to_unified(response, created=1)["choices"][0]["message"]["content"]
    translator = CohereToUnifiedStream(created=1)
    events = [
        ev("tool-plan-delta", {"tool_plan": "Plan."}),
        ev("content-start", {"content": {"type": "text", "text": ""}}, 0),
        ev("content-delta", {"content": {"text": "Text."}}, 0),
    ]
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for e in events
        for _, c in translator.feed(None, e)
    )
    assert streamed == whole == "Plan.\n\nText."
