"""Cohere v2 chat (``type: cohere``): transport here, pure translators to and from the
unified format in :mod:`.request`, :mod:`.response` and :mod:`.stream`, errors in
:mod:`.errors` (MAPPING.md §9). Both client dialects reach it through the hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage
from proxy.providers.base import StreamTranslator, UpstreamRequest, upstream_url
from proxy.providers.cohere.errors import error_from_cohere
from proxy.providers.cohere.request import to_cohere
from proxy.providers.cohere.response import openai_usage, to_unified
from proxy.providers.cohere.stream import CohereToUnifiedStream

if TYPE_CHECKING:
    from proxy.engine.route import Target

JSON = dict[str, Any]
CHAT_PATH = "/v2/chat"
HEALTH_PATH = "/v1/check-api-key"
_OWN_HEADERS = frozenset({"authorization", "content-type", "accept"})


class CohereVendor:
    """``type: cohere``: ``Authorization: Bearer``, ``POST {base_url}/v2/chat`` (streams too)."""

    wire = "cohere"

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        headers = _headers(provider)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream" if stream else "application/json"
        return UpstreamRequest("POST", upstream_url(provider, CHAT_PATH), headers, body)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        """Cohere's ``check-api-key``: authenticated, cheap, generates nothing."""
        return UpstreamRequest("POST", upstream_url(provider, HEALTH_PATH), _headers(provider))

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return error_from_cohere(status, body, headers)

    def usage(self, response: JSON) -> Usage | None:
        return Usage.read_openai(openai_usage(response.get("usage")))

    def request_from_unified(self, unified: JSON, target: Target) -> tuple[JSON, list[str]]:
        drop = target.model.drop_unsupported_params or target.provider.drop_unsupported_params
        return to_cohere(unified, upstream_model=target.upstream_model, drop_unsupported=drop)

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        return to_unified(response, created=created)

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        return CohereToUnifiedStream(created)


def _headers(provider: ProviderConfig) -> dict[str, str]:
    """Configured extra headers first, so they can add (``X-Client-Name``) but never replace
    the key."""
    extra = {k: v for k, v in provider.headers.items() if k.lower() not in _OWN_HEADERS}
    return {**extra, "authorization": f"Bearer {provider.api_key}"}


VENDOR = CohereVendor()
