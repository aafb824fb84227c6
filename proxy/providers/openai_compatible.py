"""Any OpenAI-compatible server: vLLM, Ollama, LM Studio, llama.cpp, Groq, Mistral, DeepSeek,
Together, Fireworks, OpenRouter... ``{base_url}/chat/completions``, ``GET {base_url}/models``.

What real servers do differently is absorbed here and in :mod:`proxy.providers.openai_wire`:
no key at all (an empty ``api_key`` sends no ``Authorization`` header, rather than an empty
Bearer some servers reject), ``stream_options`` refused (``send_stream_options: false`` strips
it; such a stream then has no usage and its cost is unknown), ids without ``chatcmpl-``, no
``created``/``system_fingerprint``, extra fields such as ``reasoning_content`` (passed through).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import orjson

from proxy.config.snapshot import ProviderConfig
from proxy.providers.base import UpstreamRequest, upstream_url
from proxy.providers.openai import OpenAIVendor
from proxy.providers.openai_wire import WireStream, normalise_response

JSON = dict[str, Any]


class OpenAICompatibleVendor(OpenAIVendor):
    """``type: openai_compatible``."""

    wire = "openai"

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        if stream and not provider.send_stream_options:
            body = without_stream_options(body)
        return UpstreamRequest(
            "POST", upstream_url(provider, "/chat/completions"), _headers(provider), body
        )

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        return UpstreamRequest("GET", upstream_url(provider, "/models"), _headers(provider))

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        return normalise_response(response, created)

    def stream_to_unified(self, created: int) -> WireStream:
        return WireStream(created)


def without_stream_options(body: bytes) -> bytes:
    """``body`` without ``stream_options`` (re-serialised only when it has one). The gateway
    itself adds ``include_usage`` for OpenAI-wire streams; a server that refuses the field
    gets neither that nor a client's own."""
    if b'"stream_options"' not in body:
        return body
    data = orjson.loads(body)
    if not isinstance(data, dict) or data.pop("stream_options", None) is None:
        return body
    return orjson.dumps(data)


def _headers(provider: ProviderConfig) -> Mapping[str, str]:
    return _headers_for(provider.api_key, tuple(provider.headers.items()))


@lru_cache(maxsize=256)
def _headers_for(api_key: str, extra: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """Keyless servers get no ``Authorization`` at all; configured headers may add their own
    auth (e.g. OpenRouter's ``HTTP-Referer``) but never replace the key's."""
    headers = {k: v for k, v in extra if k.lower() != "content-type"}
    if api_key:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["authorization"] = f"Bearer {api_key}"
    headers["content-type"] = "application/json"
    return MappingProxyType(headers)


VENDOR = OpenAICompatibleVendor()
