"""A request's worst case before it is sent: an input-token bound, an output bound, a cost.

The hard cap is only as safe as these bounds, so each errs high, never low:

* Input: the request body's length in bytes, plus ``OVERHEAD_TOKENS``, plus
  ``URL_IMAGE_TOKENS`` for every ``"url"`` key (an image fetched by the vendor). Vendors use
  byte-level BPE tokenizers, which emit at most one token per byte of text, and the JSON
  around the text (keys, quotes, escapes) is longer than the chat template tokens a vendor
  adds; inline base64 images count by their bytes, far above any vendor's image tokens. The
  overhead covers the hidden tool-use system prompt Anthropic adds (a few hundred tokens);
  the per-URL figure covers the largest image at gpt-4o-mini's image-token multiplier.
* Output: the request's ``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens``
  (times ``n``), else the ``max_tokens`` the gateway itself sends to an Anthropic-wire model,
  else the model's maximum output (:func:`model_max_output`).
* Cost: input at the highest of the model's input prices (cache writes may cost more than
  plain input) plus output at the output price, rounded up to whole nano-dollars; for a price
  with long-prompt tiers, at the highest prices of the tiers the input bound passes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from proxy.config.snapshot import ModelConfig

NANO = 10**9
"""Store unit: integer nano-dollars. Exact for every per-1k price with up to 6 decimals
(tokens x price / 1000 has at most 9); a finer price is rounded up (charged, never lost).
Lua's doubles keep integers exact to 2**53 nano-dollars, about 9 million USD per window."""
OVERHEAD_TOKENS = 512
URL_IMAGE_TOKENS = 50_000
FALLBACK_MAX_OUTPUT = 65_536
"""A model's maximum output when the config does not say: above every current model's
(o1-mini's 65,536 is the largest among the shipped ones)."""


def to_nano(usd: Decimal) -> int:
    """USD as whole nano-dollars, rounded up (exact: from the Decimal's integer ratio)."""
    numerator, denominator = usd.as_integer_ratio()
    return -(-numerator * NANO // denominator)


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) / NANO


def usd_text(nano: int) -> str:
    """Nano-dollars as a plain decimal string (``format_usd``'s form), without Decimal."""
    whole, part = divmod(nano, NANO)  # str(part + NANO)[1:]: the 9 digits, zero-padded
    return f"{whole}.{str(part + NANO)[1:].rstrip('0')}" if part else str(whole)


def input_bound(raw: bytes) -> int:
    """An upper bound on the request's input tokens, from its bytes alone (no parse)."""
    urls = raw.count(b'"url"') if b'"url"' in raw else 0
    return len(raw) + OVERHEAD_TOKENS + urls * URL_IMAGE_TOKENS


def model_max_output(model: ModelConfig) -> int:
    """The model's maximum output tokens: ``capabilities.max_output_tokens`` (the catalog's,
    or the config's), else :data:`FALLBACK_MAX_OUTPUT` when nobody knows it."""
    value = model.capabilities.max_output_tokens
    return value if value is not None and value > 0 else FALLBACK_MAX_OUTPUT


def asked_output(body: dict[str, Any]) -> tuple[int | None, int]:
    """(the output tokens the request asks for, times ``n``, or None; ``n``). Only a JSON
    integer counts (``type(x) is int`` also rules out ``true``)."""
    asked = body.get("max_completion_tokens")
    if type(asked) is not int:
        asked = body.get("max_tokens")
        if type(asked) is not int:
            asked = body.get("max_output_tokens")  # the Responses API's name
    choices = body.get("n")
    n = choices if type(choices) is int and choices > 1 else 1
    if type(asked) is int and asked >= 0:
        return asked * n, n
    return None, n


def output_bound(body: dict[str, Any], model: ModelConfig, anthropic_wire: bool) -> int:
    """The most output tokens the upstream may bill for this request."""
    asked, n = asked_output(body)
    return asked if asked is not None else default_output(model, anthropic_wire, n)


def default_output(model: ModelConfig, anthropic_wire: bool, n: int) -> int:
    """The output bound of a request that does not limit its output itself."""
    if anthropic_wire:
        return model.max_tokens  # what the gateway sends when the client gave none
    return model_max_output(model) * n
