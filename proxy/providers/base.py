"""What a vendor module provides: how to reach it and how its wire format maps to the unified one.

The unified format is OpenAI Chat Completions (the contract's client format). A vendor whose
wire format is not OpenAI's translates requests, responses and stream events to and from it
with pure functions; the engine chains them, so adding a vendor is one module (or package)
plus one line in :mod:`proxy.providers.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """An HTTP request ready to send: the body is serialised exactly once."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None


class StreamTranslator(Protocol):
    """Turns one dialect's stream events into another's, incrementally and purely.

    ``feed`` takes one parsed upstream event (its SSE ``event:`` name, or None, and its JSON
    payload) and returns the events to send on; ``finish`` is called at the upstream's end of
    stream (``[DONE]`` or ``message_stop``) and returns what is still owed.
    """

    def feed(self, name: str | None, payload: JSON) -> list[tuple[str | None, JSON]]: ...

    def finish(self) -> list[tuple[str | None, JSON]]: ...


class Vendor(Protocol):
    """A vendor endpoint type (``type:`` in the config's providers)."""

    #: The dialect this vendor's API speaks: "openai" or "anthropic".
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

    def usage(self, response: JSON) -> Usage:
        """Token usage of a non-streaming response in this vendor's format."""
        ...


def upstream_url(provider: ProviderConfig, path: str) -> str:
    """``path`` under the provider's ``base_url`` (which follows the vendor SDK's convention)."""
    return provider.base_url.rstrip("/") + path
