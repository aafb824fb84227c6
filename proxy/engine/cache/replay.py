"""A stored answer replayed in the client's dialect: as a whole response, or as a stream.

A stream is replayed through the same relay and translators a live one goes through, fed
with the unified chunks the stored ``chat.completion`` amounts to, as if an OpenAI-wire vendor
sent them, at a zero price: so a replayed stream ends like a live one (``data: [DONE]`` or
``message_stop``), carries usage where a live one does, and its ``cost`` is 0.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from proxy.engine.dialects import DIALECTS, OPENAI
from proxy.engine.relay import StreamRelay
from proxy.pricing import Price, usd_number
from proxy.sse import DONE, encode_data

JSON = dict[str, Any]
FREE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
ZERO_COST = usd_number(Decimal(0))


def response(dialect: str, completion: JSON) -> JSON:
    """The whole response in ``dialect``, its usage with ``cost`` 0. ``completion`` is the
    request's own copy (decoded from the store for this lookup): it may be changed."""
    payload = DIALECTS[dialect].response_from_unified(completion)
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = payload["usage"] = {}
    usage["cost"] = ZERO_COST
    return payload


def stream(dialect: str, completion: JSON, include_usage: bool, upstream_model: str) -> bytes:
    """The whole stream in ``dialect``, as the client's bytes."""
    relay = StreamRelay(
        dialect=dialect,
        wire=OPENAI,
        translator=DIALECTS[dialect].stream_from_unified(upstream_model),
        include_usage=include_usage,
        price=FREE,
    )
    body = b"".join(encode_data(chunk) for chunk in chunks(completion)) + DONE
    out = relay.feed(body)
    if not relay.done or relay.error is not None:  # a stored answer we wrote ourselves
        raise ValueError("a stored answer did not replay as a complete stream")
    return out


def chunks(completion: JSON) -> list[JSON]:
    """The unified chunks a live stream of ``completion`` would have carried: per choice the
    role, the text, the refusal, each tool call whole, the finish; then the usage chunk."""
    base: JSON = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    for key in ("system_fingerprint", "service_tier"):
        if completion.get(key) is not None:
            base[key] = completion[key]
    out: list[JSON] = []

    def chunk(index: int, delta: JSON, finish: str | None = None, logprobs: Any = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        out.append({**base, "choices": [choice], "usage": None})

    for choice in completion.get("choices") or ():
        index = int(choice.get("index") or 0)
        message = choice.get("message") or {}
        calls = message.get("tool_calls") or []
        first: JSON = {"role": message.get("role") or "assistant", "content": ""}
        if calls and not message.get("content"):
            first["content"] = None
        chunk(index, first)
        if message.get("content"):
            chunk(index, {"content": message["content"]}, logprobs=choice.get("logprobs"))
        if message.get("refusal"):
            chunk(index, {"refusal": message["refusal"]})
        for i, call in enumerate(calls):
            chunk(index, {"tool_calls": [{"index": i, **call}]})
        chunk(index, {}, choice.get("finish_reason"))
    usage = completion.get("usage")
    if isinstance(usage, dict):
        out.append({**base, "choices": [], "usage": usage})
    return out
