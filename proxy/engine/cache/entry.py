"""A stored answer and its compact encoding (orjson, zlib above a size threshold).

The answer is kept in the unified format (an OpenAI ``chat.completion``, usage included), so
any client dialect can replay it, as a whole response or as a stream, whatever dialect asked
first. Its original cost travels with it, as the exact decimal string, for ``x-llm-cost-saved-usd``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

JSON = dict[str, Any]
_COMPRESSED = b"z"  # an encoded answer is JSON ("{...") or this byte then zlib data
FINISHED = frozenset({"stop", "length", "tool_calls", "function_call"})
"""Finish reasons of a complete answer; ``content_filter`` (or none at all) is never stored."""


@dataclass(frozen=True, slots=True)
class Answer:
    completion: JSON  # unified chat.completion; never mutated once built
    provider: str
    model: str  # the config's model name that answered
    upstream_model: str
    cost: Decimal | None  # what it cost when it was answered; None when unknown

    def encode(self, compress_min_bytes: int | None) -> bytes:
        """Compact JSON, zlib-compressed when longer than ``compress_min_bytes`` (None: never)."""
        data = orjson.dumps(
            {
                "completion": self.completion,
                "provider": self.provider,
                "model": self.model,
                "upstream_model": self.upstream_model,
                "cost": None if self.cost is None else str(self.cost),
            }
        )
        if compress_min_bytes is not None and len(data) > compress_min_bytes:
            return _COMPRESSED + zlib.compress(data, 1)
        return data

    @classmethod
    def decode(cls, data: bytes) -> Answer:
        """Raises ValueError (or a subclass) on bytes this version did not write."""
        if data[:1] == _COMPRESSED:
            try:
                data = zlib.decompress(data[1:])
            except zlib.error as exc:
                raise ValueError(f"corrupt cache entry: {exc}") from None
        value = orjson.loads(data)
        cost = value["cost"]
        return cls(
            completion=value["completion"],
            provider=str(value["provider"]),
            model=str(value["model"]),
            upstream_model=str(value["upstream_model"]),
            cost=None if cost is None else Decimal(cost),
        )


def storable(completion: JSON) -> bool:
    """A complete, successful answer: choices that all finished normally."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or "error" in completion:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") in FINISHED for c in choices)
