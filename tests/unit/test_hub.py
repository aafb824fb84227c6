"""The hub: any client dialect reaches any vendor wire through the unified format.

A toy vendor with a wire format of its own (not OpenAI's, not Anthropic's) is served to both
client dialects with no code that knows the pair: that is what lets a vendor be one module.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.engine.dialects import (
    ANTHROPIC,
    DIALECTS,
    OPENAI,
    ChainedStream,
    client_response,
    stream_translator,
    upstream_body,
)
from proxy.providers.registry import vendor_for

JSON = dict[str, Any]


class _ToyStream:
    """Toy events ``{"say": text}`` ... ``{"end": reason, "in": n, "out": m}`` -> unified chunks."""

    def __init__(self, created: int) -> None:
        self.created, self.done, self.complete_at_eof = created, False, False

    def feed(self, name: str | None, payload: JSON) -> list[tuple[str | None, JSON]]:
        base = {"id": "toy", "object": "chat.completion.chunk", "created": self.created}
        base["model"] = "toy-1"
        if "say" in payload:
            choice = {"index": 0, "delta": {"content": payload["say"]}, "finish_reason": None}
            return [(None, {**base, "choices": [choice]})]
        self.complete_at_eof = True
        finish = {"index": 0, "delta": {}, "finish_reason": payload["end"]}
        usage = {"prompt_tokens": payload["in"], "completion_tokens": payload["out"]}
        usage["total_tokens"] = payload["in"] + payload["out"]
        return [
            (None, {**base, "choices": [finish]}),
            (None, {**base, "choices": [], "usage": usage}),
        ]

    def finish(self) -> list[tuple[str | None, JSON]]:
        return []


class _ToyVendor:
    wire = "toy"

    def request_from_unified(self, unified: JSON, target: Any) -> tuple[JSON, list[str]]:
        prompt = " ".join(str(m.get("content")) for m in unified["messages"])
        return {"engine": target.upstream_model, "prompt": prompt}, []

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        message = {"role": "assistant", "content": response["text"]}
        return {
            "id": "toy",
            "object": "chat.completion",
            "created": created,
            "model": "toy-1",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }

    def stream_to_unified(self, created: int) -> _ToyStream:
        return _ToyStream(created)


class _Target:
    vendor = _ToyVendor()
    upstream_model = "toy-engine"


def test_both_dialects_reach_a_new_wire_through_the_unified_format() -> None:
    openai_body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    anthropic_body = {"model": "m", "max_tokens": 5, "messages": openai_body["messages"]}
    for dialect, body in ((OPENAI, openai_body), (ANTHROPIC, anthropic_body)):
        raw, dropped = upstream_body(dialect, body, orjson.dumps(body), _Target())  # type: ignore[arg-type]
        assert orjson.loads(raw) == {"engine": "toy-engine", "prompt": "hi"} and dropped == []
    answer = {"text": "hello"}
    assert client_response(OPENAI, _ToyVendor(), answer, 7)["choices"][0]["message"]["content"]
    message = client_response(ANTHROPIC, _ToyVendor(), answer, 7)
    assert message["content"] == [{"type": "text", "text": "hello"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] == 2


def test_a_translated_stream_chains_wire_and_dialect_translators() -> None:
    translator = stream_translator(ANTHROPIC, _ToyVendor(), 7, "toy-engine")  # type: ignore[arg-type]
    assert isinstance(translator, ChainedStream)
    names = [n for n, _ in translator.feed(None, {"say": "he"})]
    names += [n for n, _ in translator.feed(None, {"say": "llo"})]
    tail = translator.feed(None, {"end": "stop", "in": 3, "out": 2})
    names += [n for n, _ in tail]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert translator.done and translator.complete_at_eof
    assert tail[-2][1]["usage"]["output_tokens"] == 2
    # To the OpenAI dialect the unified chunks are the answer: no second stage.
    assert isinstance(stream_translator(OPENAI, _ToyVendor(), 7, "m"), _ToyStream)  # type: ignore[arg-type]


def test_same_format_is_a_pass_through_of_the_clients_own_bytes() -> None:
    body = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    raw = orjson.dumps(body)

    class Target:
        vendor = vendor_for("anthropic")
        upstream_model = "claude"

    assert upstream_body(ANTHROPIC, body, raw, Target())[0] is raw  # type: ignore[arg-type]
    assert stream_translator(ANTHROPIC, vendor_for("anthropic"), 1, "claude") is None
    assert stream_translator(OPENAI, vendor_for("openai"), 1, "gpt") is None


def test_every_dialect_is_a_complete_spoke() -> None:
    for name, dialect in DIALECTS.items():
        assert dialect.name == name
        for method in ("validate", "request_to_unified", "response_from_unified"):
            assert callable(getattr(dialect, method))
        framing = dialect.stream_framing()  # the relay asks it all it must know of the dialect
        for method in ("untouched", "forward", "ends", "error", "stamp", "encode", "finish"):
            assert callable(getattr(framing, method))
        assert callable(framing.error_event) and dialect.stream_framing() is not framing
