"""Gemini translation on the kit's samples (MAPPING §7): requests, responses, streams, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.errors import ErrorType, GatewayError
from proxy.providers.gemini import ids
from proxy.providers.gemini.errors import error_from_google
from proxy.providers.gemini.request import unified_to_gemini
from proxy.providers.gemini.response import gemini_to_unified
from proxy.providers.gemini.stream import GeminiToUnifiedStream
from proxy.sse import SSEParser
from tests.kit import assert_valid, sample, sample_bytes

SCHEMA = "gemini/generateContent.request.schema.json"
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def _events(raw: bytes) -> list[dict[str, Any]]:
    parser = SSEParser()
    return [orjson.loads(e.data) for e in [*parser.feed(raw), *parser.close()]]


def _stream(events: list[dict[str, Any]]) -> tuple[GeminiToUnifiedStream, list[dict[str, Any]]]:
    translator = GeminiToUnifiedStream(created=7)
    out = [chunk for event in events for _, chunk in translator.feed(None, event)]
    return translator, out


# --- requests --------------------------------------------------------------------------------


def test_the_kit_request_sample_is_valid_under_the_derived_schema() -> None:
    assert_valid(SCHEMA, sample("gemini/generateContent.request.json"))


def test_the_openai_sample_becomes_the_kit_shape() -> None:
    body = sample("openai/chat.request.json")
    for message in body["messages"]:  # the gateway does not fetch https images: inline them
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image_url":
                part["image_url"]["url"] = f"data:image/png;base64,{PIXEL}"
    out, dropped = unified_to_gemini(body)  # parallel_tool_calls: true is Gemini's default
    assert_valid(SCHEMA, out)
    kit = sample("gemini/generateContent.request.json")
    assert out["systemInstruction"] == kit["systemInstruction"]
    assert out["contents"][0]["parts"][-1] == kit["contents"][0]["parts"][-1]
    assert {"inlineData": {"mimeType": "image/png", "data": PIXEL}} in out["contents"][0]["parts"]
    declarations = out["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["get_weather", "get_local_time"]
    assert all("parametersJsonSchema" in d and "parameters" not in d for d in declarations)
    assert dropped == []


def test_https_images_are_refused_with_a_clear_400() -> None:
    body = sample("openai/chat.request.json")
    with pytest.raises(GatewayError) as caught:
        unified_to_gemini(body, drop_unsupported=True)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert "data: URL" in caught.value.message and "does not fetch" in caught.value.message


def test_gs_uris_become_file_data() -> None:
    url = "gs://bucket/photo.jpg"
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]
    }
    out, _ = unified_to_gemini(body)
    assert out["contents"][0]["parts"] == [{"fileData": {"mimeType": "image/jpeg", "fileUri": url}}]


def test_tool_results_follow_the_kit_and_name_their_calls() -> None:
    out, _ = unified_to_gemini(
        sample("openai/chat.request.tool_results.json"), drop_unsupported=True
    )
    assert_valid(SCHEMA, out)
    model, answers = out["contents"][1], out["contents"][2]
    assert model["role"] == "model" and answers["role"] == "user"
    calls = [p["functionCall"]["name"] for p in model["parts"]]
    named = [p["functionResponse"]["name"] for p in answers["parts"] if "functionResponse" in p]
    assert named == calls == ["get_weather", "get_local_time"]
    assert answers["parts"][0]["functionResponse"]["response"]["output"].startswith("{")
    # the developer message mid-conversation joins the system instruction
    assert len(out["systemInstruction"]["parts"]) == 2
    assert out["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": choice,
    }
    out, _ = unified_to_gemini(body)
    assert out["toolConfig"] == {"functionCallingConfig": config}
    assert out["tools"] == [{"functionDeclarations": [{"name": "f"}]}]  # no empty parameters


def test_generation_config_maps_every_parameter() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 50,
        "temperature": 1.5,
        "top_p": 0.9,
        "stop": "END",
        "n": 2,
        "seed": 4,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        "reasoning_effort": "low",
    }
    out, _ = unified_to_gemini(body)
    assert_valid(SCHEMA, out)
    assert out["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 4,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "thinkingConfig": {"thinkingBudget": 1024},
    }


def test_unsupported_parameters_are_named_or_dropped() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "store": False}
    with pytest.raises(GatewayError) as caught:
        unified_to_gemini(body)
    assert caught.value.param == "logprobs" and "drop_unsupported_params" in caught.value.message
    assert unified_to_gemini(body, drop_unsupported=True)[1] == ["logprobs"]


def test_empty_texts_never_reach_gemini() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ]
    }
    out, _ = unified_to_gemini(body)
    assert "systemInstruction" not in out
    assert out["contents"][1]["parts"] == [{"functionCall": {"name": "f", "args": {}}}]


def test_a_result_for_an_unknown_call_is_a_400() -> None:
    body = {"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}
    with pytest.raises(GatewayError) as caught:
        unified_to_gemini(body)
    assert caught.value.param == "messages[0].tool_call_id"


# --- responses -------------------------------------------------------------------------------


def test_the_kit_response_becomes_tool_calls_with_usage() -> None:
    unified = gemini_to_unified(sample("gemini/generateContent.response.json"), created=5)
    choice = unified["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_local_time"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {
        "location": "Paris, France",
        "unit": "celsius",
    }
    signature = sample("gemini/generateContent.response.json")["candidates"][0]["content"]["parts"][
        0
    ]
    assert ids.decode(calls[0]["id"]).signature == signature["thoughtSignature"]
    assert ids.decode(calls[1]["id"]).signature is None
    assert unified["usage"] == {
        "prompt_tokens": 402,
        "completion_tokens": 41 + 88,
        "total_tokens": 531,
        "prompt_tokens_details": {"cached_tokens": 256},
        "completion_tokens_details": {"reasoning_tokens": 88},
    }
    assert unified["model"] == "gemini-2.5-flash" and unified["id"].endswith(
        "qpc2afWVFJK4vr0Pq6WiyAU"
    )
    again = gemini_to_unified(sample("gemini/generateContent.response.json"), created=5)
    assert again == unified  # synthesized ids are stable


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
     ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
     ("MALFORMED_FUNCTION_CALL", "stop"), ("OTHER", "stop")],
)  # fmt: skip
def test_finish_reasons(reason: str, expected: str) -> None:
    response = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": reason}]}
    assert gemini_to_unified(response, 0)["choices"][0]["finish_reason"] == expected


def test_thought_parts_are_not_the_answer() -> None:
    parts = [{"text": "thinking...", "thought": True}, {"text": "answer"}]
    response = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]}
    assert gemini_to_unified(response, 0)["choices"][0]["message"]["content"] == "answer"


def test_a_blocked_prompt_is_invalid_request_naming_the_reason() -> None:
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}
    with pytest.raises(GatewayError) as caught:
        gemini_to_unified(blocked, 0)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert "PROHIBITED_CONTENT" in caught.value.message
    with pytest.raises(GatewayError):  # before any output, a stream fails the same way
        GeminiToUnifiedStream(0).feed(None, blocked)


# --- streams ---------------------------------------------------------------------------------


def test_the_kit_stream_translates_incrementally() -> None:
    events = _events(sample_bytes("gemini/streamGenerateContent.sse"))
    translator, chunks = _stream(events)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    expected = "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"])
    assert text == expected
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.complete_at_eof and not translator.done
    ((_, usage_chunk),) = translator.finish()
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 233
    assert usage_chunk["usage"]["completion_tokens"] == 19
    assert usage_chunk["usage"]["total_tokens"] == 252


def test_a_cut_stream_is_not_complete() -> None:
    events = _events(sample_bytes("gemini/streamGenerateContent.sse"))[:2]
    translator, _ = _stream(events)
    assert not translator.complete_at_eof


def test_streamed_calls_have_the_ids_of_the_whole_response() -> None:
    response = sample("gemini/generateContent.response.json")
    whole = gemini_to_unified(response, 0)["choices"][0]["message"]["tool_calls"]
    parts = response["candidates"][0]["content"]["parts"]
    first = {
        **response,
        "candidates": [{"content": {"parts": parts[:1], "role": "model"}, "index": 0}],
    }
    last = {
        **response,
        "candidates": [{**response["candidates"][0], "content": {"parts": parts[1:]}}],
    }
    _, chunks = _stream([first, last])
    streamed = [
        call
        for c in chunks
        for choice in c["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    assert [(c["index"], c["id"]) for c in streamed] == [(0, whole[0]["id"]), (1, whole[1]["id"])]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def _call_ids(parts: list[dict[str, Any]], response_id: str | None) -> list[str]:
    response: dict[str, Any] = {"candidates": [{"content": {"parts": parts}}]}
    if response_id is not None:
        response["responseId"] = response_id
    calls = gemini_to_unified(response, 0)["choices"][0]["message"]["tool_calls"]
    return [call["id"] for call in calls]


def test_synthesized_ids_are_unique_within_a_conversation() -> None:
    same = {"functionCall": {"name": "f", "args": {"a": 1}}}
    twice = _call_ids([same, same], "r1")
    assert len(set(twice)) == 2  # two identical calls in one answer
    assert set(twice).isdisjoint(_call_ids([same, same], "r2"))  # the next answer
    other = {"functionCall": {"name": "f", "args": {"a": 2}}}
    assert _call_ids([same], None) != _call_ids([other], None)  # no responseId: the call counts
    assert _call_ids([same, other], "r1") == _call_ids([same, other], "r1")  # and stable


def test_google_s_base64_signatures_ride_as_they_are() -> None:
    signature = "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBw=="
    part = {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": signature}
    (call_id,) = _call_ids([part], "r")
    assert call_id.endswith("__tb_CikBcsjafFK168IbtVtoxVV0Tsn8O-eU45rzJahzwuKGmMbdMdfpmNpgBw")
    assert ids.decode(call_id).signature == signature
    odd = {**part, "thoughtSignature": "not base64: é="}  # any other string is encoded
    assert ids.decode(_call_ids([odd], "r")[0]).signature == "not base64: é="


def test_an_error_event_ends_the_stream_in_the_taxonomy() -> None:
    events = _events(sample_bytes("gemini/streamGenerateContent.sse"))[:1]
    translator, _ = _stream(events)
    error = {"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}
    ((_, chunk),) = translator.feed(None, error)
    assert chunk["error"]["type"] == "provider_error" and translator.done


# --- errors ----------------------------------------------------------------------------------


def _error(name: str) -> GatewayError:
    data = sample(f"gemini/errors/{name}.json")
    return error_from_google(data["status"], orjson.dumps(data["body"]), data["headers"])


def test_a_bad_key_is_invalid_api_key() -> None:
    error = _error("400")
    assert error.type is ErrorType.INVALID_API_KEY and not error.retryable


def test_resource_exhausted_is_retried_after_the_body_s_retry_delay() -> None:
    error = _error("429")
    assert error.type is ErrorType.RATE_LIMIT_EXCEEDED and error.retryable
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6.5s"}
            ],
        }
    }
    delayed = error_from_google(429, orjson.dumps(body), {})
    assert (delayed.retry_after, delayed.retry_after_ms) == ("7", "6500")


@pytest.mark.parametrize(
    ("status", "kind", "expected", "retryable"),
    [
        (403, "PERMISSION_DENIED", ErrorType.INVALID_API_KEY, False),
        (401, "UNAUTHENTICATED", ErrorType.INVALID_API_KEY, False),
        (404, "NOT_FOUND", ErrorType.MODEL_NOT_FOUND, False),
        (400, "INVALID_ARGUMENT", ErrorType.INVALID_REQUEST, False),
        (500, "INTERNAL", ErrorType.PROVIDER_ERROR, True),
        (503, "UNAVAILABLE", ErrorType.PROVIDER_ERROR, True),
        (504, "DEADLINE_EXCEEDED", ErrorType.TIMEOUT, True),
    ],
)
def test_google_statuses(status: int, kind: str, expected: ErrorType, retryable: bool) -> None:
    body = orjson.dumps({"error": {"code": status, "status": kind, "message": "m"}})
    error = error_from_google(status, body, {})
    assert (error.type, error.retryable) == (expected, retryable)


def test_garbage_error_bodies_still_map() -> None:
    error = error_from_google(502, b"<html>bad gateway</html>", {})
    assert error.type is ErrorType.PROVIDER_ERROR and error.retryable


def test_two_candidates_stream_apart_and_complete_together() -> None:
    def event(index: int, text: str, reason: str | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": index, "content": {"parts": [{"text": text}]}}
        if reason:
            candidate["finishReason"] = reason
        return {"candidates": [candidate], "responseId": "r", "modelVersion": "m"}

    translator, chunks = _stream([event(0, "a"), event(0, "b", "STOP")])
    assert translator.complete_at_eof
    out = translator.feed(None, event(1, "c"))
    assert not translator.complete_at_eof  # candidate 1 is still open
    out += translator.feed(None, event(1, "d", "MAX_TOKENS"))
    assert translator.complete_at_eof
    by_index: dict[int, str] = {}
    for chunk in chunks + [c for _, c in out]:
        for choice in chunk["choices"]:
            by_index[choice["index"]] = by_index.get(choice["index"], "") + (
                choice["delta"].get("content") or ""
            )
    assert by_index == {0: "ab", 1: "cd"}
    assert [c["choices"][0]["finish_reason"] for _, c in out][-1] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]},
         "messages[0].content[0]"),
        ({"messages": [{"role": "system", "content": 5}]}, "messages[0]"),
        ({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{x"}}]}]},
         "messages[0].tool_calls[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
         "tools[0].function.name"),
        ({"messages": [{"role": "user", "content": "x"}], "functions": [{}]}, "functions[0].name"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]},
         "messages[1].tool_call_id"),
    ],
)  # fmt: skip
def test_refusals_name_where(body: dict[str, Any], param: str) -> None:
    """Where a refused part is, named though the translator formats paths only on errors."""
    with pytest.raises(GatewayError) as caught:
        unified_to_gemini(body)
    assert caught.value.param == param
