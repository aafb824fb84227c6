"""A stored answer and its compact encoding (orjson, zlib above a size threshold).

The answer is kept in the unified format (an OpenAI ``chat.completion``, usage included), so
any client dialect can replay it, as a whole response or as a stream, whatever dialect asked
first. It is stored as the OpenAI dialect's whole response, ``usage.cost`` already 0: the
most common hit (an OpenAI SDK, no stream) sends those bytes as they are, with no parse and
no serialise; other dialects and streams parse them back into the unified answer. A short
header line before it holds what the response headers and the record need (route, original
cost as the exact decimal string for ``x-llm-cost-saved-usd``, and the original usage).
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

import orjson

from proxy.engine.cache import replay
from proxy.engine.dialects import OPENAI
from proxy.pricing import format_usd

JSON = dict[str, Any]
_COMPRESSED = b"z"  # an encoded answer is a JSON header line, or this byte then zlib data
FINISHED = frozenset({"stop", "length", "tool_calls", "function_call"})
"""Finish reasons of a complete answer; ``content_filter`` (or none at all) is never stored."""
_NO_USAGE = object()


class Answer:
    """One answer: built from a live completion (to store), or decoded from a store (to
    replay; its ``completion`` is then parsed on first use, a new copy per decoded answer)."""

    __slots__ = (
        "_completion",
        "body",
        "cost",
        "model",
        "provider",
        "saved_usd",
        "upstream_model",
        "usage",
    )

    def __init__(
        self,
        completion: JSON | None,
        provider: str,
        model: str,  # the config's model name that answered
        upstream_model: str,
        cost: Decimal | None,  # what it cost when it was answered; None when unknown
        body: bytes = b"",
    ) -> None:
        self._completion = completion  # unified chat.completion, without ``usage.cost``
        self.provider, self.model, self.upstream_model = provider, model, upstream_model
        self.cost = cost
        self.saved_usd = None if cost is None else format_usd(cost)
        self.usage: Any = _NO_USAGE if completion is None else completion.get("usage", _NO_USAGE)
        self.body = body  # the OpenAI dialect's whole response, cost 0; b"": not made yet

    @property
    def completion(self) -> JSON:
        if self._completion is None:
            completion = orjson.loads(self.body)
            if self.usage is _NO_USAGE:
                completion.pop("usage", None)
            else:  # the original usage: the body's carries the replay's cost 0
                usage = self.usage
                completion["usage"] = dict(usage) if isinstance(usage, dict) else usage
            self._completion = completion
        return self._completion

    @property
    def usage_or_none(self) -> Any:
        """The stored usage as a response carried it (None when it had none)."""
        return None if self.usage is _NO_USAGE else self.usage

    def encode(self, compress_min_bytes: int | None) -> bytes:
        """Header line and body, zlib-compressed when longer than ``compress_min_bytes``
        (None: never)."""
        if not self.body:  # what replay.response gives an OpenAI client, as bytes
            completion = self.completion
            usage = completion.get("usage")
            copy = {**completion, "usage": dict(usage) if isinstance(usage, dict) else usage}
            self.body = orjson.dumps(replay.response(OPENAI, copy))
        usage = None if self.usage is _NO_USAGE else self.usage
        header = [self.provider, self.model, self.upstream_model, self.saved_usd]
        header += [self.usage is not _NO_USAGE, usage]
        data = b"\n".join((orjson.dumps(header), self.body))
        if compress_min_bytes is not None and len(data) > compress_min_bytes:
            return _COMPRESSED + zlib.compress(data, 1)
        return data

    @classmethod
    def decode(cls, data: bytes) -> Answer:
        """Raises ValueError (or a subclass, or TypeError) on bytes this version did not
        write. The body is not parsed here: a hit that sends it as is never parses it."""
        if data[:1] == _COMPRESSED:
            try:
                data = zlib.decompress(data[1:])
            except zlib.error as exc:
                raise ValueError(f"corrupt cache entry: {exc}") from None
        head, sep, body = data.partition(b"\n")
        if not sep or not body:
            raise ValueError("not a cache entry of this version")
        header = orjson.loads(head)
        if not isinstance(header, list) or len(header) != 6:
            raise ValueError("not a cache entry header")
        provider, model, upstream_model, cost, has_usage, usage = header
        answer = cls(None, str(provider), str(model), str(upstream_model), None, body)
        if cost is not None:
            try:
                answer.cost, answer.saved_usd = Decimal(cost), str(cost)
            except (ArithmeticError, TypeError):  # decimal.InvalidOperation is one
                raise ValueError("not a cost in a cache entry header") from None
        answer.usage = usage if has_usage else _NO_USAGE
        return answer

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answer):
            return NotImplemented
        mine = (self.completion, self.provider, self.model, self.upstream_model, self.cost)
        return mine == (other.completion, other.provider, other.model, other.upstream_model,
                        other.cost)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]


def storable(completion: JSON) -> bool:
    """A complete, successful answer: choices that all finished normally."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or "error" in completion:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") in FINISHED for c in choices)
