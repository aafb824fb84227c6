"""Anthropic Messages: transport and error mapping here; the pure translators to and from the
unified (OpenAI Chat Completions) format live in :mod:`.request`, :mod:`.response` and
:mod:`.stream` (MAPPING.md §1-§6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage
from proxy.providers.anthropic.errors import error_from_anthropic
from proxy.providers.base import UpstreamRequest, upstream_url


class AnthropicVendor:
    """``type: anthropic``: ``x-api-key`` + ``anthropic-version``, ``{base_url}/v1/messages``
    (Anthropic's ``base_url`` convention has no ``/v1``)."""

    wire = "anthropic"

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        headers = _headers(provider)
        headers["content-type"] = "application/json"
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", upstream_url(provider, "/v1/messages"), headers, body)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        return UpstreamRequest(
            "GET", upstream_url(provider, "/v1/models?limit=1"), _headers(provider)
        )

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return error_from_anthropic(status, body, headers)

    def usage(self, response: dict[str, Any]) -> Usage:
        return Usage.from_anthropic(response.get("usage"))


_OWN_HEADERS = frozenset({"x-api-key", "authorization", "anthropic-version", "content-type"})


def _headers(provider: ProviderConfig) -> dict[str, str]:
    """Configured extra headers first, so they can add (``anthropic-beta``) but never replace
    the key or the API version."""
    extra = {k: v for k, v in provider.headers.items() if k.lower() not in _OWN_HEADERS}
    return {
        **extra,
        "x-api-key": provider.api_key,
        "anthropic-version": provider.anthropic_version,
    }


VENDOR = AnthropicVendor()
