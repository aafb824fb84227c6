"""Unified chunks -> Responses API events, event by event against the kit's recorded Responses
streams; every event valid against the published stream-event schema; the pass-through relay
stamps cost on ``response.completed`` only; and a property: the concatenated
``response.output_text.delta``s are the final ``output_text``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from proxy.engine.dialects import RESPONSES, ChainedStream
from proxy.engine.relay import StreamRelay
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import Price, Usage, cost, usd_number
from proxy.providers.anthropic.stream import AnthropicToOpenAIStream
from proxy.providers.responses.stream import UnifiedToResponsesStream
from proxy.sim.schemas import openapi_schema
from proxy.sse import iter_events
from tests.kit import KIT

EVENT = Draft202012Validator(
    openapi_schema(
        json.loads((KIT / "schemas/openai/responses.stream-event.schema.json").read_text())
    )
)
Events = list[tuple[str | None, dict[str, Any]]]
PRICE = Price(Decimal("0.0025"), Decimal("0.010"))


def recorded(path: str) -> Events:
    out: Events = []
    for event in iter_events((KIT / "samples" / path).read_bytes()):
        if event.data != b"[DONE]":
            out.append((event.name, orjson.loads(event.data)))
    return out


def translate(chunks: Events, model: str = "gpt-4o") -> Events:
    translator = UnifiedToResponsesStream(model)
    out: Events = []
    for name, chunk in chunks:
        out += translator.feed(name, chunk)
    out += translator.finish()
    assert translator.done
    for name, event in out:
        assert name == event["type"]
        EVENT.validate(event)
    return out


def essence(events: Events) -> list[dict[str, Any]]:
    """What a client reads from each event, ids replaced by their order of appearance (ours
    are derived from the upstream's id, OpenAI's are its own)."""
    ids: dict[str, str] = {}

    def same(value: Any) -> Any:
        if isinstance(value, dict):
            kept = ("type", "status", "role", "text", "arguments", "name", "call_id", "content")
            return {k: same(v) for k, v in value.items() if k in kept or k.endswith("_index")}
        if isinstance(value, list):
            return [same(v) for v in value]
        return value

    out = []
    for _, event in events:
        item_id = event.get("item_id") or (event.get("item") or {}).get("id")
        view = {
            k: same(v)
            for k, v in event.items()
            if k not in ("item_id", "response", "obfuscation", "logprobs")
        }
        if item_id is not None:
            view["item"] = {**view.get("item", {}), "ref": ids.setdefault(item_id, f"#{len(ids)}")}
        response = event.get("response")
        if response is not None:
            usage = response.get("usage")
            view["response"] = {
                "status": response["status"],
                "output": same(response["output"]),
                "usage": {k: usage[k] for k in ("input_tokens", "output_tokens")}
                if usage
                else None,
            }
        out.append(view)
    return out


def test_text_stream_matches_the_recorded_responses_stream_event_by_event() -> None:
    ours = translate(recorded("openai/chat.stream.text.sse"))
    theirs = recorded("openai/responses.stream.text.sse")
    assert essence(ours) == essence(theirs)
    assert [e["sequence_number"] for _, e in ours] == list(range(len(ours)))


def test_function_call_stream_matches_the_recorded_responses_stream_event_by_event() -> None:
    ours = translate(recorded("openai/chat.stream.tool_call.sse"))
    theirs = recorded("openai/responses.stream.function_call.sse")
    assert essence(ours) == essence(theirs)
    final = ours[-1][1]["response"]
    assert [item["id"] for item in final["output"]] == [
        e["item"]["id"] for _, e in ours if e["type"] == "response.output_item.added"
    ]


def test_anthropic_stream_reaches_the_responses_dialect_through_the_hub() -> None:
    chained = ChainedStream(AnthropicToOpenAIStream(created=1), UnifiedToResponsesStream("m"))
    out: Events = []
    for name, payload in recorded("anthropic/messages.stream.tool_use.sse"):
        out += chained.feed(name, payload)
    out += chained.finish()
    for _, event in out:
        EVENT.validate(event)
    kinds = [e["type"] for _, e in out]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    final = out[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    assert final["usage"]["output_tokens"] > 0
    assert [e["sequence_number"] for _, e in out] == list(range(len(out)))


def test_length_finish_is_response_incomplete() -> None:
    chunks: Events = [
        (None, {"id": "c1", "choices": [{"index": 0, "delta": {"content": "abc"}}]}),
        (None, {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
    ]
    out = translate(chunks)
    assert out[-1][0] == "response.incomplete"
    response = out[-1][1]["response"]
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert "usage" not in response  # an upstream that sent none: no invented numbers


def test_upstream_error_chunk_is_an_error_event_that_ends_the_stream() -> None:
    translator = UnifiedToResponsesStream("m")
    translator.feed(None, {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]})
    error = {"message": "overloaded", "type": "provider_error", "code": None}
    [(name, event)] = translator.feed(None, {"error": error})
    assert name == "error" and translator.done
    EVENT.validate(event)
    assert event["error"]["type"] == "provider_error" and event["sequence_number"] == 5


def _relay(dialect: str = RESPONSES) -> StreamRelay:
    return StreamRelay(
        dialect=dialect, wire=RESPONSES, translator=None, include_usage=True, price=PRICE
    )


def test_pass_through_relay_forwards_bytes_and_stamps_cost_on_completed_only() -> None:
    raw = (KIT / "samples/openai/responses.stream.text.sse").read_bytes()
    relay = _relay()
    out = relay.feed(raw[:1000]) + relay.feed(raw[1000:]) + relay.end()
    assert relay.done and relay.error is None
    head, _, completed = out.rpartition(b"event: response.completed\n")
    assert raw.startswith(head)  # every event before the last, byte for byte
    final = orjson.loads(completed.split(b"data: ", 1)[1])
    expected = cost(PRICE, Usage(prompt_tokens=233, completion_tokens=12))
    assert relay.cost == expected
    assert final["response"]["usage"]["cost"] == usd_number(expected)
    EVENT.validate(final)


def test_pass_through_relay_cut_stream_ends_with_an_error_event() -> None:
    raw = (KIT / "samples/openai/responses.stream.text.sse").read_bytes()
    relay = _relay()
    out = relay.feed(raw[: raw.index(b"event: response.output_text.done")]) + relay.end()
    last = list(iter_events(out))[-1]
    event = orjson.loads(last.data)
    assert last.name == "error" and relay.error == "provider_error"
    EVENT.validate(event)
    assert event["sequence_number"] == relay.events_out - 1 == 15


def test_relay_fail_in_the_responses_dialect() -> None:
    relay = _relay()
    out = relay.fail(GatewayError(ErrorType.TIMEOUT, "too slow"))
    event = orjson.loads(next(iter_events(out)).data)
    assert event["code"] == "timeout" and event["error"]["type"] == "timeout"
    assert event["sequence_number"] == 0


@st.composite
def unified_streams(draw: st.DrawFn) -> tuple[str, Events]:
    text = draw(st.text(min_size=0, max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    chunks: Events = [
        (None, {"id": "chatcmpl-x", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    ]
    chunks += [
        (None, {"id": "chatcmpl-x", "choices": [{"index": 0, "delta": {"content": p}}]})
        for p in pieces
    ]
    if draw(st.booleans()):
        call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
        chunks.append(
            (None, {"id": "chatcmpl-x", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
        )
    finish = {"index": 0, "delta": {}, "finish_reason": draw(st.sampled_from(["stop", "length"]))}
    chunks.append((None, {"id": "chatcmpl-x", "choices": [finish]}))
    if draw(st.booleans()):
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        chunks.append((None, {"id": "chatcmpl-x", "choices": [], "usage": usage}))
    return text, chunks


@settings(max_examples=150, deadline=None)
@given(unified_streams())
def test_concatenated_text_deltas_are_the_final_output_text(case: tuple[str, Events]) -> None:
    text, chunks = case
    translator = UnifiedToResponsesStream("m")
    out: Events = []
    for name, chunk in chunks:
        out += translator.feed(name, chunk)
    out += translator.finish()
    deltas = "".join(e["delta"] for _, e in out if e["type"] == "response.output_text.delta")
    final = out[-1][1]["response"]
    output_text = "".join(
        part["text"] for item in final["output"] if item["type"] == "message"
        for part in item["content"]
    )  # fmt: skip
    assert deltas == output_text == text
    done = [e["text"] for _, e in out if e["type"] == "response.output_text.done"]
    assert done == ([text] if text else [])
    assert [e["sequence_number"] for _, e in out] == list(range(len(out)))


def test_recorded_responses_streams_are_schema_valid_and_numbered() -> None:
    for name in ("openai/responses.stream.text.sse", "openai/responses.stream.function_call.sse"):
        events = recorded(name)
        for kind, event in events:
            assert kind == event["type"]
            EVENT.validate(event)
        assert [e["sequence_number"] for _, e in events] == list(range(len(events)))


def test_pass_through_error_event_gets_the_contract_type_and_the_clients_numbering() -> None:
    relay = _relay()
    error = {"type": "server_error", "code": "server_error", "message": "boom", "param": None}
    upstream = {**error, "type": "error", "sequence_number": 0, "error": error}
    out = relay.feed(b"event: error\ndata: " + orjson.dumps(upstream) + b"\n\n")
    event = orjson.loads(next(iter_events(out)).data)
    assert relay.done and relay.error == "provider_error"
    assert event["error"] == {**error, "type": "provider_error"}
    EVENT.validate(event)


def test_a_final_event_without_usage_has_unknown_usage_and_null_cost() -> None:
    relay = StreamRelay(
        dialect=RESPONSES,
        wire="openai",
        translator=UnifiedToResponsesStream("m"),
        include_usage=True,
        price=PRICE,
    )
    chunk = {
        "id": "c",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
    }
    out = relay.feed(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
    final = orjson.loads(list(iter_events(out))[-1].data)
    assert final["type"] == "response.completed"
    assert final["response"]["usage"] == {
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "cost": None,
    }
    assert relay.done and relay.usage_missing and relay.cost is None
