"""The stream framing of the Chat Completions dialect (``/v1/chat/completions``).

Usage rides in a chunk's ``usage`` (the last chunk, when the client asked for it with
``stream_options.include_usage``: the gateway always asks the upstream, and drops or blanks it
for a client that did not); the stream ends with ``data: [DONE]``; an error is a data line
with an ``error`` object. A client that asked for usage always gets the usage chunk, with
null counts and cost when the upstream reported none (unknown, never a made-up zero).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.errors import GatewayError
from proxy.pricing import Usage, unknown_usage
from proxy.providers.base import StreamState
from proxy.sse import DONE, Event, encode_data

JSON = dict[str, Any]


class ChatStreamFraming:
    """One Chat Completions stream; remembers its last chunk for a usage chunk of its own."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: JSON | bytes | None = None

    def untouched(self, event: Event) -> bool:
        # A quote inside a JSON string is escaped (\\"), so these patterns are top-level keys.
        data = event.data
        return (b'"usage":null' in data or b'"usage": null' in data) and b'"error"' not in data

    def forward(self, event: Event) -> bytes:
        self._last = event.data
        return encode_data(event.data)

    def ends(self, name: str | None) -> bool:
        return False  # the OpenAI wire ends with [DONE], which the relay reads itself

    def error(
        self, name: str | None, payload: JSON, sequence: int, passthrough: bool
    ) -> JSON | None:
        return payload if name == "error" or "error" in payload else None

    def stamp(self, name: str | None, payload: JSON, state: StreamState) -> bool | None:
        usage = payload.get("usage")
        if not usage:
            return False
        state.stamp(Usage.read_openai(usage), usage)
        if not state.include_usage:
            if not payload.get("choices"):
                return None  # the usage chunk the client did not ask for
            payload["usage"] = None
        return True

    def encode(self, name: str | None, data: JSON | bytes) -> bytes:
        self._last = data
        return encode_data(data)

    def error_event(self, error: GatewayError, sequence: int) -> bytes:
        return encode_data(error.openai_body())

    def finish(self, state: StreamState) -> tuple[bytes, int]:
        if state.usage_seen or not state.include_usage or state.error is not None:
            return DONE, 1
        return self._unknown_usage_chunk(state) + DONE, 2

    def _unknown_usage_chunk(self, state: StreamState) -> bytes:
        """The usage chunk the client asked for, when the upstream sent none: counts and cost
        null (unknown), never zero."""
        last = self._last
        if isinstance(last, bytes):
            try:
                last = orjson.loads(last)
            except orjson.JSONDecodeError:
                last = None
        base = last if isinstance(last, dict) else {}
        usage = unknown_usage("openai")
        state.stamp(None, usage)
        chunk = {
            "id": base.get("id", ""),
            "object": "chat.completion.chunk",
            "created": base.get("created", 0),
            "model": base.get("model", ""),
            "choices": [],
            "usage": usage,
        }
        return encode_data(chunk)
