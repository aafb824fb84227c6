"""Request parameters a vendor has no equivalent for: dropped at their neutral value, else
refused with a 400 naming them, or dropped (and named for the log) under
``drop_unsupported_params``. Shared by the vendors whose wire is not the unified format."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from proxy.errors import invalid_request

Neutral = Callable[[Any], bool]


def never(_value: Any) -> bool:
    """No value of this parameter is a no-op."""
    return False


NEUTRAL: Mapping[str, Neutral] = {
    "logprobs": lambda v: v is False,
    "top_logprobs": lambda v: v == 0,
    "logit_bias": lambda v: v == {},
    "prediction": never,
    "audio": never,
    "modalities": lambda v: v == ["text"],
    "store": lambda v: v is False,
    "metadata": lambda v: v == {},
    "prompt_cache_key": lambda v: v == "",
    "web_search_options": never,
    "verbosity": lambda v: v == "medium",
}
"""OpenAI parameters no other vendor has, with their no-op values: each vendor's table starts
from these and adds its own."""


def unsupported(
    body: Mapping[str, Any],
    handled: frozenset[str],
    neutral: Mapping[str, Neutral],
    *,
    drop: bool,
    vendor: str,
) -> list[str]:
    """Names of the non-neutral parameters ``vendor`` cannot take; raise unless ``drop``.
    Unknown parameters count as unsupported (null always is neutral)."""
    names = [
        name
        for name, value in body.items()
        if name not in handled and value is not None and not neutral.get(name, never)(value)
    ]
    if names and not drop:
        listed = ", ".join(f"'{name}'" for name in names)
        raise invalid_request(
            f"Unsupported parameter(s) for {vendor} model: {listed}. Remove them, or set "
            "drop_unsupported_params on the model or provider to drop them.",
            names[0],
        )
    return names
