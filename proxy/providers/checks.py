"""Cheap type checks shared by the OpenAI-style inbound dialects (Chat Completions, Responses):
each names the bad field in an ``invalid_request``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from proxy.errors import invalid_request


def check_numbers(body: Mapping[str, Any], numeric: Iterable[str], integer: Iterable[str]) -> None:
    """``numeric`` fields must be numbers and ``integer`` ones integers, when present."""
    for name in numeric:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid_request(f"'{name}' must be a number.", name)
    for name in integer:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_request(f"'{name}' must be an integer.", name)
