"""The stream relay: upstream SSE bytes in, client SSE bytes out, usage and cost stamped.

Pure and synchronous (no I/O), so it is unit-testable on recorded streams: the server feeds it
what the upstream sends and writes what it returns. Pass-through events are forwarded as the
upstream's own bytes; only events the gateway changes (usage, cost) are re-serialised. What
differs between client dialects (where usage rides, what an error event looks like, what is
owed at the end) is the dialect's :class:`~proxy.providers.base.StreamFraming`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from proxy.engine.dialects import DIALECTS, OPENAI
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import Price, Usage, cost, usd_number
from proxy.providers.base import StreamTranslator
from proxy.sse import Event, SSEParser

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
        self._framing = DIALECTS[dialect].stream_framing()
        self._translator = translator
        # A translator that only repairs (an OpenAI-wire vendor's) may take a well-formed first
        # event as is: then the stream is passed through unparsed, as OpenAI's is.
        self._accepts_raw = getattr(translator, "accepts_raw", None)
        self.include_usage = include_usage
        self._price = price
        self.tap = tap  # sees every upstream event first (the response cache's capture)
        self._model = model  # for translated events whose wire does not name the model
        self._parser = SSEParser()
        self.usage: Usage | None = None  # None: not (yet) reported by the upstream
        self.cost: Decimal | None = None
        self.usage_seen = False  # a usage-carrying event went by (known or not)
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
        return self._framing.error_event(error, self.events_out - 1)

    def _on_event(self, event: Event) -> bytes:
        if self.done:
            return b""
        if self.tap is not None:
            self.tap(event)
        if self.wire == OPENAI and event.data == b"[DONE]":  # the unified wire's end
            return self._upstream_finished()
        framing = self._framing
        if self._translator is None:  # a pass-through: the upstream speaks the dialect
            if framing.untouched(event):
                self.events_out += 1
                return framing.forward(event)
        elif (
            self._accepts_raw is not None
            and framing.untouched(event)
            and self._accepts_raw(event.data)
        ):
            self._translator = None  # nothing to repair in this stream
            self.events_out += 1
            return framing.forward(event)
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
            return out + self._upstream_finished() if framing.ends(name) else out
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
        tail, events = self._framing.finish(self)
        self.events_out += events
        return out + tail

    @property
    def usage_missing(self) -> bool:
        """The stream ended normally, but the upstream never reported its usage."""
        return self.done and self.error is None and self.usage is None

    def _emit(self, name: str | None, payload: JSON, raw: bytes | None) -> bytes:
        """Stamp usage/cost where the dialect carries them, then encode (raw when unchanged)."""
        framing = self._framing
        error = framing.error(name, payload, self.events_out, self._translator is None)
        if error is not None:
            if error is not payload:
                payload, raw = error, None
            self.error = _error_type(payload)
            self.done = True  # an error event ends the stream in every dialect
        else:
            changed = framing.stamp(name, payload, self)
            if changed is None:
                return b""
            if changed:
                raw = None
        self.events_out += 1
        if raw is None and self._model and payload.get("model") == "":
            payload["model"] = self._model
        return framing.encode(name, raw if raw is not None else payload)

    def stamp(self, usage: Usage | None, target: JSON) -> None:
        """Record the usage (None: the upstream reported none) and put the cost in ``target``."""
        self.usage_seen = True
        self.usage = usage
        self.cost = None if usage is None else cost(self._price, usage)
        target["cost"] = None if self.cost is None else usd_number(self.cost)


def _error_type(payload: JSON) -> str:
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("type") or "provider_error")
    return str(payload.get("code") or "provider_error")  # a Responses API error event
