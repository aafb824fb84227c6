"""Exact request pricing: token usage times configured per-1k prices, in ``Decimal``.

Floats would drift in the last digits of ``x-llm-cost-usd``; Decimal keeps the header exact.
Input tokens fall in three buckets priced apart: uncached input, cache reads, cache writes.
Some models bill a whole request at higher prices once its prompt passes a size (Gemini 2.5 Pro
and Claude's long context above 200K tokens): those are a price's ``tiers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 tokens; cache prices default to the input price when not configured."""

    input_per_1k: Decimal
    output_per_1k: Decimal
    cache_read_per_1k: Decimal | None = None
    cache_write_per_1k: Decimal | None = None
    tiers: tuple[tuple[int, Price], ...] = ()
    """``(above_prompt_tokens, price)``, ascending: a request whose prompt (cached tokens
    included) is longer than the threshold is billed at that price, every bucket of it."""

    def for_prompt(self, prompt_tokens: int) -> Price:
        """The price that bills a request with a prompt of ``prompt_tokens`` tokens."""
        chosen = self
        for above, price in self.tiers:
            if prompt_tokens <= above:
                break
            chosen = price
        return chosen


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in OpenAI terms: ``prompt_tokens`` counts all input, cached included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.prompt_tokens - self.cached_tokens - self.cache_write_tokens, 0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read an OpenAI ``usage`` object (``prompt_tokens_details`` may be absent or null)."""
        if not usage:
            return cls()
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
        )

    @classmethod
    def read_openai(cls, usage: Any) -> Usage | None:
        """An OpenAI ``usage`` object's counts, or None when it reports none (absent, null,
        empty, token counts null): unknown, which is not the same as free."""
        if not isinstance(usage, Mapping) or not _reports(usage, _OPENAI_COUNTS):
            return None
        return cls.from_openai(usage)

    @classmethod
    def read_anthropic(cls, usage: Any) -> Usage | None:
        """An Anthropic ``usage`` object's counts, or None when it reports none."""
        if not isinstance(usage, Mapping) or not _reports(usage, _ANTHROPIC_COUNTS):
            return None
        return cls.from_anthropic(usage)

    @classmethod
    def from_anthropic(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read an Anthropic ``usage`` object, whose ``input_tokens`` excludes cached tokens."""
        if not usage:
            return cls()
        read = int(usage.get("cache_read_input_tokens") or 0)
        write = int(usage.get("cache_creation_input_tokens") or 0)
        return cls(
            prompt_tokens=int(usage.get("input_tokens") or 0) + read + write,
            completion_tokens=int(usage.get("output_tokens") or 0),
            cached_tokens=read,
            cache_write_tokens=write,
        )


_OPENAI_COUNTS = ("prompt_tokens", "completion_tokens")
_ANTHROPIC_COUNTS = ("input_tokens", "output_tokens")
# What a client gets when the upstream reported no usage: every count unknown, never zero.
UNKNOWN_OPENAI_USAGE: Mapping[str, None] = {
    "prompt_tokens": None,
    "completion_tokens": None,
    "total_tokens": None,
}
UNKNOWN_ANTHROPIC_USAGE: Mapping[str, None] = {"input_tokens": None, "output_tokens": None}
UNKNOWN_RESPONSES_USAGE: Mapping[str, None] = {**UNKNOWN_ANTHROPIC_USAGE, "total_tokens": None}


def unknown_usage(dialect: str) -> dict[str, Any]:
    """A fresh usage object with every count unknown, for a client of ``dialect``
    (``"openai"``, ``"anthropic"`` or ``"responses"``)."""
    if dialect == "responses":
        return dict(UNKNOWN_RESPONSES_USAGE)
    return dict(UNKNOWN_ANTHROPIC_USAGE if dialect == "anthropic" else UNKNOWN_OPENAI_USAGE)


def _reports(usage: Mapping[str, Any], counts: tuple[str, ...]) -> bool:
    return any(usage.get(key) is not None for key in counts)


def cost(price: Price, usage: Usage) -> Decimal:
    """The exact USD cost of ``usage`` at ``price`` (at the tier its prompt size falls in)."""
    if price.tiers:
        price = price.for_prompt(usage.prompt_tokens)
    read = price.cache_read_per_1k if price.cache_read_per_1k is not None else price.input_per_1k
    write = price.cache_write_per_1k if price.cache_write_per_1k is not None else price.input_per_1k
    total = (
        usage.uncached_input_tokens * price.input_per_1k
        + usage.cached_tokens * read
        + usage.cache_write_tokens * write
        + usage.completion_tokens * price.output_per_1k
    )
    return total / _THOUSAND


def format_usd(amount: Decimal) -> str:
    """A plain decimal string (never exponent notation): ``0.00105``, ``0``."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"


def usd_number(amount: Decimal) -> float:
    """The JSON number for ``usage.cost``; the shortest float repr keeps the same digits."""
    return float(format_usd(amount))


def cheapest(prices: Iterable[tuple[str, Price]]) -> str | None:
    """Name of the cheapest model, by input plus output price per 1k tokens."""
    best = min(prices, key=lambda item: item[1].input_per_1k + item[1].output_per_1k, default=None)
    return best[0] if best else None
