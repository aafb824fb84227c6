"""The stream relay on the kit's recorded streams: pass-through, usage and cost, cut streams."""

from decimal import Decimal

import orjson

from proxy.engine.dialects import ANTHROPIC, OPENAI, stream_translator
from proxy.engine.relay import StreamRelay
from proxy.pricing import Price, Usage, cost, usd_number
from proxy.providers.registry import vendor_for
from proxy.sse import iter_events
from tests.kit import assert_valid, sample_bytes

PRICE = Price(Decimal("0.0025"), Decimal("0.01"))


def relay_for(dialect: str, wire: str, include_usage: bool = True) -> StreamRelay:
    """A relay as the server builds one: translating when the dialects differ."""
    translator = stream_translator(dialect, vendor_for(wire), 1, "model")
    return StreamRelay(
        dialect=dialect, wire=wire, translator=translator, include_usage=include_usage, price=PRICE
    )


def relay_all(raw: bytes, relay: StreamRelay, step: int = 37) -> bytes:
    out = b"".join(relay.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    return out + relay.end()


def openai_chunks(out: bytes) -> list[dict]:
    return [orjson.loads(e.data) for e in iter_events(out) if e.data != b"[DONE]"]


def test_openai_passthrough_keeps_bytes_and_stamps_cost_on_usage_chunk():
    raw = sample_bytes("openai/chat.stream.text.sse")
    relay = relay_for(OPENAI, OPENAI)
    out = relay_all(raw, relay)
    assert relay.done and relay.error is None
    chunks = openai_chunks(out)
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["cost"] == usd_number(relay.cost)
    assert relay.cost == cost(PRICE, Usage.from_openai(final["usage"]))
    for chunk in chunks:
        assert_valid("openai/chat.completions.chunk.schema.json", chunk)
    assert out.endswith(b"data: [DONE]\n\n")
    # every event but the usage chunk is forwarded byte for byte
    upstream = [e.data for e in iter_events(raw)]
    relayed = [e.data for e in iter_events(out)]
    assert relayed[:-2] == upstream[:-2]


def test_openai_usage_chunk_dropped_when_client_did_not_ask():
    relay = relay_for(OPENAI, OPENAI, include_usage=False)
    chunks = openai_chunks(relay_all(sample_bytes("openai/chat.stream.text.sse"), relay))
    assert all(c.get("usage") is None for c in chunks)
    assert relay.usage is not None and relay.cost is not None  # still priced and recorded


def test_cut_openai_stream_ends_with_error_event():
    raw = sample_bytes("openai/chat.stream.text.sse")
    cut = raw[: len(raw) // 2]
    relay = relay_for(OPENAI, OPENAI)
    out = relay_all(cut, relay)
    last = openai_chunks(out)[-1]
    assert last["error"]["type"] == "provider_error"
    assert b"[DONE]" not in out and relay.error == "provider_error"


def test_anthropic_passthrough_stamps_cost_in_message_delta():
    raw = sample_bytes("anthropic/messages.stream.tool_use.sse")
    relay = relay_for(ANTHROPIC, ANTHROPIC)
    out = relay_all(raw, relay)
    events = [(e.name, orjson.loads(e.data)) for e in iter_events(out)]
    assert events[-1][0] == "message_stop" and relay.done
    delta = next(p for n, p in events if n == "message_delta")
    assert delta["usage"]["cost"] == usd_number(relay.cost)
    start = next(p for n, p in events if n == "message_start")["message"]["usage"]
    merged = {**start, **{k: v for k, v in delta["usage"].items() if k != "cost"}}
    assert relay.usage == Usage.from_anthropic(merged)


def test_anthropic_stream_error_event_passes_through_and_is_recorded():
    relay = relay_for(ANTHROPIC, ANTHROPIC)
    out = relay_all(sample_bytes("anthropic/messages.stream.error.sse"), relay)
    assert list(iter_events(out))[-1].name == "error"
    assert relay.error == "overloaded_error"


def test_cut_anthropic_stream_ends_with_anthropic_error_event():
    raw = sample_bytes("anthropic/messages.stream.tool_use.sse")
    relay = relay_for(ANTHROPIC, ANTHROPIC)
    out = relay_all(raw[: len(raw) // 3], relay)
    last = list(iter_events(out))[-1]
    assert last.name == "error"
    assert_valid("anthropic/stream/error.schema.json", orjson.loads(last.data))


def test_anthropic_upstream_to_openai_client_prices_the_final_usage_chunk():
    relay = relay_for(OPENAI, ANTHROPIC)
    out = relay_all(sample_bytes("anthropic/messages.stream.tool_use.sse"), relay)
    chunks = openai_chunks(out)
    assert out.endswith(b"data: [DONE]\n\n")
    assert chunks[-1]["usage"]["cost"] == usd_number(relay.cost)
    for chunk in chunks:
        assert_valid("openai/chat.completions.chunk.schema.json", chunk)


def test_openai_upstream_to_anthropic_client_prices_message_delta():
    relay = relay_for(ANTHROPIC, OPENAI)
    out = relay_all(sample_bytes("openai/chat.stream.tool_call.sse"), relay)
    events = [(e.name, orjson.loads(e.data)) for e in iter_events(out)]
    assert events[-1][0] == "message_stop"
    delta = next(p for n, p in events if n == "message_delta")
    assert delta["usage"]["cost"] == usd_number(relay.cost)
    for _, payload in events:
        assert_valid("anthropic/stream/stream-event.schema.json", payload)


def test_translated_error_event_ends_the_stream_with_exactly_one_error():
    relay = relay_for(OPENAI, ANTHROPIC)
    out = relay_all(sample_bytes("anthropic/messages.stream.error.sse"), relay)
    errors = [c for c in openai_chunks(out) if "error" in c]
    assert len(errors) == 1 and relay.done
    assert b"[DONE]" not in out


def test_passthrough_skips_parsing_only_events_it_never_changes():
    """Text that merely mentions usage or errors is escaped JSON: still forwarded verbatim."""
    tricky = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"\\"usage\\":{} and \\"error\\""},'
        b'"finish_reason":null}],"usage":null}\n\n'
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
        b"data: [DONE]\n\n"
    )
    relay = relay_for(OPENAI, OPENAI)
    out = relay_all(tricky, relay)
    events = list(iter_events(out))
    assert events[0].data == next(iter_events(tricky)).data
    assert orjson.loads(events[1].data)["usage"]["cost"] == usd_number(relay.cost)
    assert relay.usage == Usage(prompt_tokens=3, completion_tokens=2) and relay.error is None
