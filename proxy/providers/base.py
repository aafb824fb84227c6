"""What a vendor module provides: how to reach it and how its wire format maps to the unified one.

The unified format is OpenAI Chat Completions. A vendor translates requests from it and
responses and stream events to it with pure functions; a client dialect (:class:`Dialect`)
does the opposite. The hub (:mod:`proxy.engine.dialects`) chains a dialect and a vendor, so
adding a vendor is one module (or package) plus one line in :mod:`proxy.providers.registry`,
and adding a dialect one module plus one line in the hub's ``DIALECTS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage
from proxy.sse import Event

if TYPE_CHECKING:
    from proxy.engine.route import Target

JSON = dict[str, Any]
Events = list[tuple[str | None, JSON]]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """An HTTP request ready to send: the body is serialised exactly once.

    ``auth``, when set, is awaited before each send for headers that cannot be built ahead
    (an OAuth token that expires), and ``unauthorized`` told of a 401 so a revoked token is not
    reused: None for vendors with static keys, so they pay nothing.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    auth: Callable[[], Awaitable[Mapping[str, str]]] | None = None
    unauthorized: Callable[[], None] | None = None
    """Called when the upstream answers 401: the ``auth`` credentials are dropped."""


class StreamTranslator(Protocol):
    """Turns one dialect's stream events into another's, incrementally and purely.

    ``feed`` takes one parsed upstream event (its SSE ``event:`` name, or None, and its JSON
    payload) and returns the events to send on; ``finish`` is called at the upstream's end of
    stream (``[DONE]``, or once ``done``) and returns what is still owed. ``done`` turns true
    when the upstream's terminal event (or an error) was seen: the relay then ends the client's
    stream. A wire whose streams end at EOF without a terminal event (Gemini) sets an optional
    ``complete_at_eof`` once what it saw makes the stream complete; EOF before that is a cut.
    """

    done: bool

    def feed(self, name: str | None, payload: JSON) -> Events: ...

    def finish(self) -> Events: ...


class StreamState(Protocol):
    """The stream relay as a :class:`StreamFraming` sees it (:mod:`proxy.engine.relay`)."""

    include_usage: bool  # an OpenAI-dialect client asked for the final usage chunk
    usage_seen: bool  # an event carrying usage (known or not) went by
    error: str | None  # the error type that ended the stream, if one did

    def stamp(self, usage: Usage | None, target: JSON) -> None:
        """Record the stream's usage (None: the upstream reported none) and write its cost
        (or null) into ``target``, the usage object the client will read."""
        ...


class StreamFraming(Protocol):
    """How a client dialect's stream carries usage and cost, errors and its end. The relay
    does the plumbing (parse, translate, count) and asks this, made anew for each stream,
    about everything that differs between dialects. ``untouched``, ``forward`` and ``ends``
    are asked only when the upstream speaks the dialect itself (a pass-through)."""

    def untouched(self, event: Event) -> bool:
        """An event the gateway never changes, known without parsing it: sent as it came."""
        ...

    def forward(self, event: Event) -> bytes:
        """An untouched event, encoded for the client."""
        ...

    def ends(self, name: str | None) -> bool:
        """Whether this (already sent) event is the upstream's last."""
        ...

    def error(
        self, name: str | None, payload: JSON, sequence: int, passthrough: bool
    ) -> JSON | None:
        """The event to send when this one is an error (None: it is not); it ends the stream.
        ``sequence`` is the number of events sent before it; ``passthrough``: it came from an
        upstream speaking this dialect, not from a translator."""
        ...

    def stamp(self, name: str | None, payload: JSON, state: StreamState) -> bool | None:
        """Stamp usage and cost where this event carries them: True when ``payload`` changed,
        False when it did not, None to drop the event."""
        ...

    def encode(self, name: str | None, data: JSON | bytes) -> bytes:
        """One event (a payload, or its unchanged bytes) as SSE for the client."""
        ...

    def error_event(self, error: GatewayError, sequence: int) -> bytes:
        """The event that ends a stream the gateway has to fail once it began."""
        ...

    def finish(self, state: StreamState) -> tuple[bytes, int]:
        """What the client is owed after the upstream's last event: bytes and event count."""
        ...


class Dialect(Protocol):
    """A client dialect: an inbound endpoint's format, a spoke of the hub."""

    #: Its name; a vendor whose ``wire`` has the same name gets requests passed through.
    name: str

    def validate(self, body: Any) -> None:
        """A cheap hot-path check of an inbound body: ``invalid_request`` naming the field."""
        ...

    def request_to_unified(self, body: JSON) -> JSON:
        """An inbound request in the unified format (the client's ``model`` is kept)."""
        ...

    def response_from_unified(self, response: JSON) -> JSON:
        """A unified ``chat.completion`` in this dialect."""
        ...

    def stream_from_unified(self, model: str) -> StreamTranslator | None:
        """A translator of unified chunks into this dialect's events (None: they are the same)."""
        ...

    def stream_framing(self) -> StreamFraming:
        """A new stream's framing in this dialect (usage, cost, errors, its end)."""
        ...


class Vendor(Protocol):
    """A vendor endpoint type (``type:`` in the config's providers)."""

    #: The format this vendor's API speaks; equal to a dialect's name means pass-through.
    wire: str

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        """The upstream request for a body already in this vendor's wire format."""
        ...

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        """A cheap authenticated request that proves the provider is reachable."""
        ...

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        """Map an upstream error response onto the contract's taxonomy."""
        ...

    def usage(self, response: JSON) -> Usage | None:
        """Token usage of a non-streaming response in this vendor's format; None when the
        response reports none (its cost is then unknown, never zero)."""
        ...

    def request_from_unified(self, unified: JSON, target: Target) -> tuple[JSON, list[str]]:
        """A unified request as this vendor's request body for ``target`` (its upstream model,
        the model's defaults), plus the parameters dropped under ``drop_unsupported_params``."""
        ...

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        """This vendor's non-streaming response as a unified ``chat.completion``."""
        ...

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        """A translator of this vendor's stream events into unified chunks (None: identity)."""
        ...


class NativeDialect:
    """A client dialect a vendor's API also speaks as is (OpenAI's Responses API), seen as a
    vendor whose ``wire`` is that dialect: the hub swaps it in for a request in that dialect,
    which then passes through to the endpoint ``request`` builds, with the vendor's own error
    mapping and health check. A vendor declares these in an optional ``natives`` mapping
    (dialect name -> NativeDialect); one without it, or without the dialect, gets requests
    translated through the unified format as usual. Never used to translate: it exists only
    where the client's dialect equals its wire.
    """

    def __init__(
        self,
        vendor: Vendor,
        wire: str,
        request: Callable[[ProviderConfig, bytes, bool], UpstreamRequest],
        usage: Callable[[Any], Usage | None],
    ) -> None:
        self.vendor, self.wire, self._request, self._usage = vendor, wire, request, usage

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        return self._request(provider, body, stream)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        return self.vendor.health_request(provider)

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return self.vendor.error_from_upstream(status, body, headers)

    def usage(self, response: JSON) -> Usage | None:
        return self._usage(response.get("usage"))

    def request_from_unified(self, unified: JSON, target: Target) -> tuple[JSON, list[str]]:
        raise TypeError(f"the native '{self.wire}' wire only passes requests through")

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        raise TypeError(f"the native '{self.wire}' wire only passes responses through")

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        raise TypeError(f"the native '{self.wire}' wire only passes streams through")


def upstream_url(provider: ProviderConfig, path: str) -> str:
    """``path`` under the provider's ``base_url`` (which follows the vendor SDK's convention)."""
    return provider.base_url.rstrip("/") + path
