"""The stream framing of the Responses API dialect (``/v1/responses``).

Usage rides in the final event's ``response.usage`` (``response.completed``, ``.incomplete``
or ``.failed``), which also ends the stream; the cost is stamped there, null with null counts
when the upstream reported none. Errors are ``error`` events, put in the contract's terms and
numbered in the stream the client got.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import GatewayError
from proxy.pricing import unknown_usage
from proxy.providers.base import StreamState
from proxy.providers.responses.response import usage_from_responses
from proxy.providers.responses.stream import contract_error_event
from proxy.sse import Event, encode_named, encode_typed

JSON = dict[str, Any]
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""The events that end a Responses stream (an ``error`` event ends it too)."""
_TOUCHED = FINAL_EVENTS | {"error"}


class ResponsesStreamFraming:
    """One Responses API stream (no state of its own)."""

    __slots__ = ()

    def untouched(self, event: Event) -> bool:
        return event.name is not None and event.name not in _TOUCHED

    def forward(self, event: Event) -> bytes:
        return encode_named(event.name or "", event.data)

    def ends(self, name: str | None) -> bool:
        return name in FINAL_EVENTS

    def error(
        self, name: str | None, payload: JSON, sequence: int, passthrough: bool
    ) -> JSON | None:
        if name != "error":
            return None  # a translated stream's errors are already in the contract's terms
        return contract_error_event(payload, sequence) if passthrough else payload

    def stamp(self, name: str | None, payload: JSON, state: StreamState) -> bool | None:
        if name not in FINAL_EVENTS:
            return False
        response = payload.get("response")
        if not isinstance(response, dict):
            return False
        if response.get("status") == "failed":
            state.error = str((response.get("error") or {}).get("code") or "provider_error")
        usage = response.get("usage")
        counts = usage_from_responses(usage)
        if counts is None:  # reported no counts: unknown
            response["usage"] = usage = unknown_usage("responses")
        state.stamp(counts, usage)
        return True

    encode = staticmethod(encode_typed)  # no frame of its own: called once per event

    def error_event(self, error: GatewayError, sequence: int) -> bytes:
        inner = error.openai_body()["error"]
        event = {
            "type": "error",
            "sequence_number": sequence,
            "code": inner["code"],
            "message": error.message,
            "param": error.param,
            "error": inner,  # the SDK raises on this object
        }
        return encode_named("error", event)

    def finish(self, state: StreamState) -> tuple[bytes, int]:
        return b"", 0
