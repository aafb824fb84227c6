"""Anthropic Messages, both as a vendor wire and as the ``/v1/messages`` client dialect.

Transport and error mapping here; the pure translators to and from the unified (OpenAI Chat
Completions) format live in :mod:`.request`, :mod:`.response` and :mod:`.stream` (MAPPING.md
§1-§6), and serve both spokes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage
from proxy.providers.anthropic.errors import error_from_anthropic
from proxy.providers.anthropic.framing import MessagesStreamFraming
from proxy.providers.anthropic.request import (
    anthropic_to_openai,
    openai_to_anthropic,
    validate_messages_request,
)
from proxy.providers.anthropic.response import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from proxy.providers.anthropic.stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from proxy.providers.base import StreamFraming, StreamTranslator, UpstreamRequest, upstream_url

if TYPE_CHECKING:
    from proxy.engine.route import Target

JSON = dict[str, Any]


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

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage.read_anthropic(response.get("usage"))

    def request_from_unified(self, unified: JSON, target: Target) -> tuple[JSON, list[str]]:
        model, provider = target.model, target.provider
        return openai_to_anthropic(
            unified,
            upstream_model=target.upstream_model,
            default_max_tokens=model.max_tokens,
            drop_unsupported=model.drop_unsupported_params or provider.drop_unsupported_params,
        )

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        return anthropic_to_openai_response(response, created=created)

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        return AnthropicToOpenAIStream(created=created)


class AnthropicDialect:
    """``/v1/messages``: Anthropic-SDK clients, whatever vendor answers."""

    name = "anthropic"

    def validate(self, body: Any) -> None:
        validate_messages_request(body)

    def request_to_unified(self, body: JSON) -> JSON:
        return anthropic_to_openai(body, upstream_model=str(body.get("model")))

    def response_from_unified(self, response: JSON) -> JSON:
        return openai_to_anthropic_response(response)

    def stream_from_unified(self, model: str) -> StreamTranslator | None:
        return OpenAIToAnthropicStream(model=model)

    def stream_framing(self) -> StreamFraming:
        return MessagesStreamFraming()


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
DIALECT = AnthropicDialect()
