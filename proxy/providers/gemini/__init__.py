"""Google Gemini: AI Studio (``type: gemini``) and Vertex AI (``type: vertex_ai``).

Both speak the same ``generateContent`` wire format; they differ in URL and credentials. The
model is part of the URL (``.../models/{model}:generateContent``, streams on
``:streamGenerateContent?alt=sse``), so the vendors set ``model_in_url``. AI Studio takes its
key in ``x-goog-api-key`` (never in the URL, where it would reach access logs); Vertex AI takes
an OAuth access token from a service-account key file (:mod:`.vertex_auth`), added per request
through ``UpstreamRequest.auth``. Vertex's ``v1`` API has no function-call ids, so none are
sent there. Pure translators: :mod:`.request`, :mod:`.response`, :mod:`.stream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from proxy.config.snapshot import ProviderConfig
from proxy.errors import GatewayError
from proxy.pricing import Usage
from proxy.providers.base import StreamTranslator, UpstreamRequest, upstream_url
from proxy.providers.gemini.errors import error_from_google
from proxy.providers.gemini.request import unified_to_gemini
from proxy.providers.gemini.response import gemini_to_unified, unified_usage
from proxy.providers.gemini.stream import GeminiToUnifiedStream
from proxy.providers.gemini.vertex_auth import token_source

if TYPE_CHECKING:
    from proxy.engine.route import Target

JSON = dict[str, Any]
_OWN_HEADERS = frozenset({"x-goog-api-key", "authorization", "content-type"})


def method_path(model: str, stream: bool) -> str:
    verb = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    return f"/models/{quote(model, safe='')}{verb}"


class _GeminiWire:
    """What both Gemini vendors share: the wire format and its translation."""

    wire = "gemini"
    model_in_url = True
    send_ids = True

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return error_from_google(status, body, headers)

    def usage(self, response: JSON) -> Usage | None:
        return Usage.read_openai(unified_usage(response.get("usageMetadata")))

    def request_from_unified(self, unified: JSON, target: Target) -> tuple[JSON, list[str]]:
        drop = target.model.drop_unsupported_params or target.provider.drop_unsupported_params
        return unified_to_gemini(unified, drop_unsupported=drop, send_ids=self.send_ids)

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        return gemini_to_unified(response, created)

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        return GeminiToUnifiedStream(created)


class GeminiVendor(_GeminiWire):
    """``type: gemini``: ``{base_url}/v1beta/models/{model}:generateContent``."""

    def chat_request(
        self, provider: ProviderConfig, body: bytes, stream: bool, *, model: str = ""
    ) -> UpstreamRequest:
        url = upstream_url(provider, "/v1beta" + method_path(model, stream))
        return UpstreamRequest("POST", url, _api_key_headers(provider), body)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        url = upstream_url(provider, "/v1beta/models?pageSize=1")
        return UpstreamRequest("GET", url, _api_key_headers(provider))


class VertexVendor(_GeminiWire):
    """``type: vertex_ai``: ``/v1/projects/{project}/locations/{location}/publishers/google/
    models/{model}:generateContent`` with a bearer token from ``credentials_file``."""

    send_ids = False  # Vertex v1 has no functionCall.id / functionResponse.id (MAPPING §7)

    def chat_request(
        self, provider: ProviderConfig, body: bytes, stream: bool, *, model: str = ""
    ) -> UpstreamRequest:
        path = f"{_location_path(provider)}/publishers/google{method_path(model, stream)}"
        source = token_source(provider.credentials_file)
        url = upstream_url(provider, path)
        headers = _vertex_headers(provider)
        return UpstreamRequest("POST", url, headers, body, source.headers, source.invalidate)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        """A token fetch plus the cheapest authenticated call: the location's own resource."""
        source = token_source(provider.credentials_file)
        url = upstream_url(provider, _location_path(provider))
        return UpstreamRequest("GET", url, _vertex_headers(provider), None, source.headers)


def vertex_base_url(location: str) -> str:
    """Vertex's regional host; ``global`` has no region prefix."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def _location_path(provider: ProviderConfig) -> str:
    project, location = quote(provider.project, safe=""), quote(provider.location, safe="")
    return f"/v1/projects/{project}/locations/{location}"


def _extra(provider: ProviderConfig) -> dict[str, str]:
    return {k: v for k, v in provider.headers.items() if k.lower() not in _OWN_HEADERS}


def _api_key_headers(provider: ProviderConfig) -> Mapping[str, str]:
    return _frozen_headers(("x-goog-api-key", provider.api_key), tuple(_extra(provider).items()))


def _vertex_headers(provider: ProviderConfig) -> Mapping[str, str]:
    return _frozen_headers(None, tuple(_extra(provider).items()))


@lru_cache(maxsize=256)
def _frozen_headers(
    key: tuple[str, str] | None, extra: tuple[tuple[str, str], ...]
) -> Mapping[str, str]:
    """Built once per key and header set, not once per request."""
    headers = {**dict(extra), "content-type": "application/json"}
    if key is not None:
        headers[key[0]] = key[1]
    return MappingProxyType(headers)


GEMINI = GeminiVendor()
VERTEX = VertexVendor()
