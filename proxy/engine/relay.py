"""The stream relay: upstream SSE bytes in, client SSE bytes out, usage and cost stamped.

Pure and synchronous (no I/O), so it is unit-testable on recorded streams: the server feeds it
what the upstream sends and writes what it returns. Pass-through events are forwarded as the
upstream's own bytes; only events the gateway changes (usage, cost) are re-serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from proxy.engine.dialects import ANTHROPIC, OPENAI, RESPONSES
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import Price, Usage, cost, unknown_usage, usd_number
from proxy.providers.base import StreamTranslator
from proxy.providers.responses import FINAL_EVENTS, usage_from_responses
from proxy.providers.responses.stream import contract_error_event
from proxy.sse import DONE, Event, SSEParser, encode_data, encode_named

JSON = dict[str, Any]


class StreamRelay:
    """One stream's translation state. ``done`` once the upstream's terminal event was seen."""

    def __init__(
        self,
        *,
        dialect: str,
        wire: str,
        translator: StreamTranslator | None,
        include_usage: bool,
        price: Price,
        tap: Callable[[Event], None] | None = None,
        model: str = "",
    ) -> None:
        self.dialect, self.wire = dialect, wire
        self._translator = translator
        # A translator that only repairs (an OpenAI-wire vendor's) may take a well-formed first
        # event as is: then the stream is passed through unparsed, as OpenAI's is.
        self._accepts_raw = getattr(translator, "accepts_raw", None)
        self._include_usage = include_usage
        self._price = price
        self.tap = tap  # sees every upstream event first (the response cache's capture)
        self._model = model  # for translated events whose wire does not name the model
        self._parser = SSEParser()
        self._start_usage: JSON = {}
        self.usage: Usage | None = None  # None: not (yet) reported by the upstream
        self.cost: Decimal | None = None
        self._usage_seen = False  # a usage-carrying event went by (known or not)
        self._last: JSON | bytes | None = None  # the last OpenAI chunk out (id, model)
        self.done = False
        self.error: str | None = None
        self.events_out = 0

    def feed(self, chunk: bytes) -> bytes:
        """Bytes for the client in answer to ``chunk`` from the upstream (maybe empty)."""
        out = [self._on_event(event) for event in self._parser.feed(chunk)]
        return b"".join(out)

    def end(self) -> bytes:
        """The upstream closed its body: flush, and end with an error event if it was cut."""
        tail = b"".join(self._on_event(event) for event in self._parser.close())
        if self.done:
            return tail
        if getattr(self._translator, "complete_at_eof", False):  # a wire that ends at EOF
            return tail + self._upstream_finished()
        cut = GatewayError(
            ErrorType.PROVIDER_ERROR, "The upstream ended before the stream was complete."
        )
        return tail + self.fail(cut)

    def fail(self, error: GatewayError) -> bytes:
        """An error event in the client's dialect (after the stream began, it is all we can do)."""
        self.done, self.error = True, str(error.type)
        self.events_out += 1
        if self.dialect == OPENAI:
            return encode_data(error.openai_body())
        if self.dialect == RESPONSES:
            return encode_named("error", _responses_error(error, self.events_out - 1))
        return encode_named("error", error.anthropic_body())

    def _on_event(self, event: Event) -> bytes:
        if self.done:
            return b""
        if self.tap is not None:
            self.tap(event)
        if self.wire == OPENAI and event.data == b"[DONE]":
            return self._upstream_finished()
        if self._translator is None:
            if _untouched(self.wire, event):
                self.events_out += 1
                self._last = event.data
                return encode_data(event.data) if self.wire == OPENAI else _named(event)
        elif (
            self._accepts_raw is not None
            and _untouched(self.wire, event)
            and self._accepts_raw(event.data)
        ):
            self._translator = None  # nothing to repair in this stream
            self.events_out += 1
            self._last = event.data
            return encode_data(event.data)
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self.fail(
                GatewayError(
                    ErrorType.PROVIDER_ERROR, "The upstream sent an unreadable stream event."
                )
            )
        if not isinstance(payload, dict):
            return b""
        name = None if self.wire == OPENAI else event.name or payload.get("type")
        if self._translator is None:
            out = self._emit(name, payload, event.data)
            if self.wire == ANTHROPIC and name == "message_stop":
                return out + self._upstream_finished()
            if self.wire == RESPONSES and name in FINAL_EVENTS:
                return out + self._upstream_finished()
            return out
        out = b"".join(self._emit(n, p, None) for n, p in self._translator.feed(name, payload))
        if self._translator.done and not self.done:  # the upstream's terminal event
            return out + self._upstream_finished()
        if getattr(self._translator, "settled", False):
            self._translator = None  # a repairer with nothing left to repair: pass through
        return out

    def _upstream_finished(self) -> bytes:
        out = b""
        if self._translator is not None:
            out = b"".join(self._emit(n, p, None) for n, p in self._translator.finish())
        self.done = True
        if self.dialect == OPENAI:
            if not self._usage_seen and self._include_usage and self.error is None:
                out += self._unknown_usage_chunk()
            self.events_out += 1
            return out + DONE
        return out

    @property
    def usage_missing(self) -> bool:
        """The stream ended normally, but the upstream never reported its usage."""
        return self.done and self.error is None and self.usage is None

    def _unknown_usage_chunk(self) -> bytes:
        """The usage chunk the client asked for, when the upstream sent none: counts and cost
        null (unknown), never zero."""
        last = self._last
        if isinstance(last, bytes):
            try:
                last = orjson.loads(last)
            except orjson.JSONDecodeError:
                last = None
        base = last if isinstance(last, dict) else {}
        usage = unknown_usage(OPENAI)
        self._stamp(None, usage)
        chunk = {
            "id": base.get("id", ""),
            "object": "chat.completion.chunk",
            "created": base.get("created", 0),
            "model": base.get("model", ""),
            "choices": [],
            "usage": usage,
        }
        self.events_out += 1
        return encode_data(chunk)

    def _emit(self, name: str | None, payload: JSON, raw: bytes | None) -> bytes:
        """Stamp usage/cost where the dialect carries them, then encode (raw when unchanged)."""
        if name == "error" or (self.dialect == OPENAI and "error" in payload):
            if self.dialect == RESPONSES and self._translator is None:
                payload, raw = contract_error_event(payload, self.events_out), None
            self.error = _error_type(payload)
            self.done = True  # an error event ends the stream in every dialect
        elif self.dialect == OPENAI and payload.get("usage"):
            self._stamp(Usage.read_openai(payload["usage"]), payload["usage"])
            if not self._include_usage:
                if not payload.get("choices"):
                    return b""
                payload["usage"] = None
            raw = None
        elif self.dialect == ANTHROPIC and name == "message_start":
            self._start_usage = dict((payload.get("message") or {}).get("usage") or {})
        elif self.dialect == ANTHROPIC and name == "message_delta":
            usage = payload.get("usage")
            if Usage.read_anthropic(usage) is None:  # reported no counts: unknown
                payload["usage"] = unknown_usage(ANTHROPIC)
                self._stamp(None, payload["usage"])
            else:
                merged = {**self._start_usage, **{k: v for k, v in usage.items() if v is not None}}
                self._stamp(Usage.from_anthropic(merged), usage)
            raw = None
        elif self.dialect == RESPONSES and name in FINAL_EVENTS:
            raw = self._responses_final(payload, raw)
        self.events_out += 1
        if raw is None and self._model and payload.get("model") == "":
            payload["model"] = self._model
        if self.dialect == OPENAI:
            self._last = payload
            return encode_data(raw if raw is not None else payload)
        return encode_named(name or str(payload.get("type")), raw if raw is not None else payload)

    def _responses_final(self, payload: JSON, raw: bytes | None) -> bytes | None:
        """``response.completed`` (or incomplete/failed) carries usage: stamp its cost (null,
        with null counts, when the upstream reported none)."""
        response = payload.get("response")
        if not isinstance(response, dict):
            return raw
        if response.get("status") == "failed":
            self.error = str((response.get("error") or {}).get("code") or "provider_error")
        usage = response.get("usage")
        counts = usage_from_responses(usage)
        if counts is None:  # reported no counts: unknown
            response["usage"] = usage = unknown_usage(RESPONSES)
        self._stamp(counts, usage)
        return None

    def _stamp(self, usage: Usage | None, target: JSON) -> None:
        """Record the usage (None: the upstream reported none) and put the cost in ``target``."""
        self._usage_seen = True
        self.usage = usage
        self.cost = None if usage is None else cost(self._price, usage)
        target["cost"] = None if self.cost is None else usd_number(self.cost)


def _error_type(payload: JSON) -> str:
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("type") or "provider_error")
    return str(payload.get("code") or "provider_error")  # a Responses API error event


def _responses_error(error: GatewayError, sequence_number: int) -> JSON:
    """The Responses API's ``error`` event; its ``error`` object makes the SDK raise."""
    inner = error.openai_body()["error"]
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "code": inner["code"],
        "message": error.message,
        "param": error.param,
        "error": inner,
    }


# Pass-through events the gateway never changes, recognised without parsing their JSON. A
# quote inside a JSON string is escaped (\"), so these byte patterns can only be the event's
# own top-level keys, never text the model wrote.
_ANTHROPIC_UNTOUCHED = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "ping"}
)

_RESPONSES_TOUCHED = FINAL_EVENTS | {"error"}


def _untouched(wire: str, event: Event) -> bool:
    if wire == ANTHROPIC:
        return event.name in _ANTHROPIC_UNTOUCHED
    if wire == RESPONSES:  # named events; only the final ones and errors are looked at
        return event.name is not None and event.name not in _RESPONSES_TOUCHED
    data = event.data
    return (b'"usage":null' in data or b'"usage": null' in data) and b'"error"' not in data


def _named(event: Event) -> bytes:
    return encode_named(event.name or "", event.data)
