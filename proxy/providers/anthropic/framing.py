"""The stream framing of the Messages dialect (``/v1/messages``).

Usage rides in ``message_start`` (input) and ``message_delta`` (output, and Anthropic's final
counts); the cost is stamped into ``message_delta``'s usage, null when it reported no counts.
``message_stop`` ends the stream; an ``error`` event ends it on a failure.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import GatewayError
from proxy.pricing import Usage, unknown_usage
from proxy.providers.base import StreamState
from proxy.sse import Event, encode_named, encode_typed

JSON = dict[str, Any]
# Events the gateway never changes, known by their name alone.
UNTOUCHED = frozenset({"content_block_start", "content_block_delta", "content_block_stop", "ping"})


class MessagesStreamFraming:
    """One Messages stream; keeps ``message_start``'s usage to merge with the final counts."""

    __slots__ = ("_start_usage",)

    def __init__(self) -> None:
        self._start_usage: JSON = {}

    def untouched(self, event: Event) -> bool:
        return event.name in UNTOUCHED

    def forward(self, event: Event) -> bytes:
        return encode_named(event.name or "", event.data)

    def ends(self, name: str | None) -> bool:
        return name == "message_stop"

    def error(
        self, name: str | None, payload: JSON, sequence: int, passthrough: bool
    ) -> JSON | None:
        return payload if name == "error" else None

    def stamp(self, name: str | None, payload: JSON, state: StreamState) -> bool | None:
        if name == "message_start":
            self._start_usage = dict((payload.get("message") or {}).get("usage") or {})
            return False
        if name != "message_delta":
            return False
        usage = payload.get("usage")
        if Usage.read_anthropic(usage) is None:  # reported no counts: unknown
            payload["usage"] = unknown_usage("anthropic")
            state.stamp(None, payload["usage"])
        else:
            merged = {**self._start_usage, **{k: v for k, v in usage.items() if v is not None}}
            state.stamp(Usage.from_anthropic(merged), usage)
        return True

    encode = staticmethod(encode_typed)  # no frame of its own: called once per event

    def error_event(self, error: GatewayError, sequence: int) -> bytes:
        return encode_named("error", error.anthropic_body())

    def finish(self, state: StreamState) -> tuple[bytes, int]:
        return b"", 0
