"""azure_openai and openai_compatible as pure functions: URLs, auth headers, Azure's errors on
the taxonomy (the kit's samples), and the repairs of what OpenAI-wire servers leave out."""

from __future__ import annotations

import copy
from decimal import Decimal
from types import MappingProxyType

import orjson
import pytest

from proxy.config.snapshot import ProviderConfig
from proxy.engine.dialects import client_response, stream_translator
from proxy.engine.relay import StreamRelay
from proxy.errors import ErrorType
from proxy.pricing import Price
from proxy.providers.anthropic.response import openai_to_anthropic_response
from proxy.providers.anthropic.stream import OpenAIToAnthropicStream
from proxy.providers.azure import VENDOR as AZURE
from proxy.providers.azure import chat_url
from proxy.providers.openai import VENDOR as OPENAI_VENDOR
from proxy.providers.openai_compatible import VENDOR as COMPAT
from proxy.providers.openai_compatible import without_stream_options
from proxy.providers.openai_wire import WireStream, normalise_response
from proxy.sim.faults import kit_dir
from proxy.sse import encode_data

KIT = kit_dir() / "samples"


def azure(**changes) -> ProviderConfig:
    base = ProviderConfig("azure", "azure_openai", "https://contoso.openai.azure.com")
    fields = {"api_key": "k", "api_version": "2024-10-21", **changes}
    return ProviderConfig(**{**{f: getattr(base, f) for f in base.__slots__}, **fields})


def compat(**changes) -> ProviderConfig:
    return ProviderConfig("local", "openai_compatible", "http://127.0.0.1:8000/v1", **changes)


def sample(path: str):
    return orjson.loads((KIT / path).read_bytes())


def test_classic_and_v1_urls_match_the_kit_samples():
    classic = sample("azure/chat.request.deployments.http.json")["url"].split("azure.com")[1]
    v1 = sample("azure/chat.request.v1.http.json")["url"].split("azure.com")[1]
    assert chat_url(azure(), "gpt-4o-prod").endswith(classic)
    assert chat_url(azure(api_version=None), "gpt-4o-prod").endswith(v1)
    assert "/deployments/a%2Fb/" in chat_url(azure(), "a/b")  # a name cannot escape the path
    req = AZURE.chat_request(azure(), b"{}", stream=False, model="gpt-4o-prod")
    assert req.url == "https://contoso.openai.azure.com" + classic
    health = AZURE.health_request(azure()).url
    assert health.endswith("/openai/models?api-version=2024-10-21")
    assert AZURE.health_request(azure(api_version=None)).url.endswith("/openai/v1/models")


def test_azure_sends_one_credential_and_configured_headers_cannot_replace_it():
    extra = MappingProxyType({"api-key": "evil", "Authorization": "evil", "x-ms-client": "c"})
    keyed = AZURE.chat_request(azure(headers=extra), b"{}", False, model="d").headers
    assert keyed == {"x-ms-client": "c", "api-key": "k", "content-type": "application/json"}
    token = AZURE.chat_request(azure(api_key="", azure_ad_token="T"), b"{}", False, model="d")
    assert token.headers["authorization"] == "Bearer T" and "api-key" not in token.headers


def test_compatible_server_auth_and_the_stream_options_switch():
    assert "authorization" not in COMPAT.chat_request(compat(), b"{}", True).headers
    keyed = COMPAT.chat_request(compat(api_key="s"), b"{}", True)
    assert keyed.headers["authorization"] == "Bearer s"
    assert keyed.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert COMPAT.health_request(compat()).url == "http://127.0.0.1:8000/v1/models"
    body = orjson.dumps({"model": "m", "stream": True, "stream_options": {"include_usage": True}})
    assert COMPAT.chat_request(compat(), body, True).body == body
    stripped = COMPAT.chat_request(compat(send_stream_options=False), body, True).body
    assert orjson.loads(stripped) == {"model": "m", "stream": True}
    plain = b'{"model":"m","messages":[{"role":"user","content":"\\"stream_options\\""}]}'
    assert without_stream_options(plain) is plain  # mentioned only inside a string


def test_azure_errors_on_the_taxonomy():
    filtered = sample("azure/errors/400-content_filter.json")
    error = AZURE.error_from_upstream(400, orjson.dumps(filtered["body"]), {})
    assert error.type is ErrorType.INVALID_REQUEST and error.code == "content_filter"
    assert error.message.startswith("Azure OpenAI's content filter refused the prompt")
    assert not error.retryable
    missing = {"error": {"code": "DeploymentNotFound", "message": "The API deployment ..."}}
    error = AZURE.error_from_upstream(404, orjson.dumps(missing), {})
    assert error.type is ErrorType.MODEL_NOT_FOUND
    bare = orjson.dumps({"error": {"code": "404", "message": "Resource not found"}})
    error = AZURE.error_from_upstream(404, bare, {})
    assert error.type is ErrorType.PROVIDER_ERROR and "api_version" in error.message
    limited = orjson.dumps({"error": {"code": "429", "message": "Please retry after 6 seconds."}})
    error = AZURE.error_from_upstream(429, limited, {"retry-after": "6"})
    assert error.type is ErrorType.RATE_LIMIT_EXCEEDED and error.retryable
    assert error.retry_after == "6"
    denied = orjson.dumps({"error": {"code": "401", "message": "Access denied"}})
    assert AZURE.error_from_upstream(401, denied, {}).type is ErrorType.INVALID_API_KEY
    assert AZURE.error_from_upstream(403, b"", {}).type is ErrorType.INVALID_API_KEY
    assert AZURE.error_from_upstream(500, b"<html>", {}).retryable


def test_the_azure_response_sample_needs_no_repair_and_translates_for_anthropic():
    response = sample("azure/chat.response.json")
    assert normalise_response(copy.deepcopy(response), 1) == response
    message = openai_to_anthropic_response(response)
    assert message["content"] == [
        {"type": "text", "text": response["choices"][0]["message"]["content"]}
    ]
    assert message["stop_reason"] == "end_turn" and "prompt_filter_results" not in message
    response["choices"][0]["finish_reason"] = "content_filter"
    assert openai_to_anthropic_response(response)["stop_reason"] == "refusal"


def test_a_response_missing_id_object_created_gets_them_and_keeps_extras():
    fixed = normalise_response({"choices": [], "reasoning_content": "x", "created": 0}, 1700)
    assert fixed["id"].startswith("chatcmpl-") and fixed["object"] == "chat.completion"
    assert fixed["created"] == 1700 and fixed["reasoning_content"] == "x"


def azure_stream() -> list[dict]:
    opener = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    base = {
        "id": "chatcmpl-A",
        "object": "chat.completion.chunk",
        "created": 1764061500,
        "model": "gpt-4o-2024-11-20",
    }
    return [
        opener,
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                    "content_filter_results": {},
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
    ]


def test_azure_stream_opener_is_held_then_sent_valid_and_annotations_kept():
    stream = WireStream(created=99)
    out = [stream.feed(None, chunk) for chunk in azure_stream()]
    assert out[0] == []  # held: it carries no content
    opener, first = out[1][0][1], out[1][1][1]
    assert opener["id"] == "chatcmpl-A" and opener["created"] == 1764061500
    assert opener["model"] == "gpt-4o-2024-11-20" and opener["choices"] == []
    assert opener["object"] == "chat.completion.chunk" and opener["prompt_filter_results"]
    assert first["choices"][0]["content_filter_results"] == {}
    assert stream.finish() == []


def test_azure_stream_to_anthropic_keeps_the_real_id_and_maps_content_filter():
    events = []
    translator = OpenAIToAnthropicStream(model="gpt-4o-prod")
    wire = WireStream(created=99)
    for chunk in azure_stream():
        for _, unified in wire.feed(None, chunk):
            events += translator.feed(None, unified)
    events += translator.finish()
    assert events[0][1]["message"]["id"] == "chatcmpl-A"
    delta = next(p for n, p in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "refusal"


def test_compatible_chunks_without_id_or_created_and_an_error_after_the_opener():
    stream = WireStream(created=42)
    ((_, chunk),) = stream.feed(None, {"choices": [{"index": 0, "delta": {"content": "x"}}]})
    assert chunk["id"].startswith("chatcmpl-") and chunk["created"] == 42
    assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == ""
    failing = WireStream(created=1)
    assert failing.feed(None, azure_stream()[0]) == []
    error = {"error": {"message": "boom", "type": "server_error"}}
    assert failing.feed(None, error) == [(None, error)] and failing.done


def test_the_hub_repairs_what_it_passes_through_from_openai_wire_vendors():
    assert stream_translator("openai", OPENAI_VENDOR, 1, "m") is None  # OpenAI: nothing added
    assert isinstance(stream_translator("openai", AZURE, 1, "m"), WireStream)
    assert isinstance(stream_translator("openai", COMPAT, 1, "m"), WireStream)
    bare = {"choices": [], "usage": None}
    assert client_response("openai", OPENAI_VENDOR, dict(bare), 7) == bare  # as OpenAI sent it
    repaired = client_response("openai", COMPAT, dict(bare), 7)
    assert repaired["object"] == "chat.completion" and repaired["created"] == 7
    assert repaired["id"].startswith("chatcmpl-")


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_a_thinking_block_first(key):
    response = {
        "id": "x",
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "4", key: "2+2"},
                "finish_reason": "stop",
            }
        ],
    }
    content = openai_to_anthropic_response(response)["content"]
    assert content == [
        {"type": "thinking", "thinking": "2+2", "signature": ""},
        {"type": "text", "text": "4"},
    ]
    stream = OpenAIToAnthropicStream(model="m")
    events = []
    for delta in ({"reasoning_content": "2+"}, {"reasoning_content": "2"}, {"content": "4"}):
        events += stream.feed(None, {"id": "x", "choices": [{"index": 0, "delta": delta}]})
    kinds = [(n, p.get("content_block", p.get("delta", {})).get("type")) for n, p in events]
    assert kinds[1:] == [
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_stop", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
    ]


def _relay(translator: WireStream) -> StreamRelay:
    price = Price(Decimal("0.0025"), Decimal("0.01"))
    return StreamRelay(
        dialect="openai", wire="openai", translator=translator, include_usage=False, price=price
    )


def _sse(chunks: list[dict]) -> bytes:
    return b"".join(encode_data(c) for c in chunks) + b"data: [DONE]\n\n"


def test_a_well_formed_stream_is_relayed_as_its_own_bytes():
    base = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 5, "model": "m"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"content": w}}], "usage": None}
        for w in ("a", "b")
    ]
    relay = _relay(WireStream(1))
    assert relay.feed(_sse(chunks)) == _sse(chunks)  # byte for byte, never re-serialised
    assert relay._translator is None and relay.done


def test_an_azure_stream_is_passed_through_once_its_opener_is_repaired():
    relay = _relay(WireStream(1))
    out = relay.feed(_sse(azure_stream()[:3]))
    assert relay._translator is None  # repaired the opener; the rest needs nothing
    first = orjson.loads(out.split(b"\n\n")[0][len(b"data: ") :])
    assert first["id"] == "chatcmpl-A" and first["prompt_filter_results"]


def test_a_stream_missing_created_is_repaired_chunk_by_chunk():
    chunks = [
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "model": "m",
            "usage": None,
            "choices": [{"index": 0, "delta": {"content": w}}],
        }
        for w in ("a", "b")
    ]
    relay = _relay(WireStream(77))
    out = relay.feed(_sse(chunks))
    events = [orjson.loads(e[len(b"data: ") :]) for e in out.split(b"\n\n") if b"{" in e]
    assert [e["created"] for e in events] == [77, 77] and relay._translator is not None
