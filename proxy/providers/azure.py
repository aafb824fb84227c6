"""Azure OpenAI: the OpenAI wire at Azure's URLs and auth, Azure's errors (MAPPING.md §8).

With ``api_version`` set, the classic deployment URL
``{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...``; without it the
v1 API, ``{base_url}/openai/v1/chat/completions`` with ``model`` = the deployment. A model's
``upstream_model`` is the deployment name. Auth is ``api-key`` or, with a Microsoft Entra ID
token, ``Authorization: Bearer``. Bodies and streams are OpenAI's plus content-filter
annotations, kept for OpenAI-dialect clients; :mod:`proxy.providers.openai_wire` repairs the
prompt-filter chunk that opens a stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from proxy.config.snapshot import ProviderConfig
from proxy.errors import ErrorType, GatewayError
from proxy.providers import responses
from proxy.providers.base import NativeDialect, UpstreamRequest, upstream_url
from proxy.providers.openai import OpenAIVendor, error_fields, error_from_openai
from proxy.providers.openai_wire import WireStream, normalise_response

JSON = dict[str, Any]
DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
CONTENT_FILTER = "content_filter"


class AzureOpenAIVendor(OpenAIVendor):
    """``type: azure_openai``."""

    wire = "openai"
    model_in_url = True
    """The classic URL names the deployment: :func:`proxy.engine.upstream` passes ``model``."""

    def chat_request(
        self, provider: ProviderConfig, body: bytes, stream: bool, model: str = ""
    ) -> UpstreamRequest:
        return UpstreamRequest("POST", chat_url(provider, model), _headers(provider), body)

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        if provider.api_version:
            url = upstream_url(provider, f"/openai/models?api-version={provider.api_version}")
        else:
            url = upstream_url(provider, "/openai/v1/models")
        return UpstreamRequest("GET", url, _headers(provider))

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return error_from_azure(status, body, headers)

    def response_to_unified(self, response: JSON, created: int) -> JSON:
        return normalise_response(response, created)

    def stream_to_unified(self, created: int) -> WireStream:
        return WireStream(created)


def chat_url(provider: ProviderConfig, deployment: str) -> str:
    """The classic deployment URL when ``api_version`` is set, else the v1 API's."""
    if provider.api_version:
        path = f"/openai/deployments/{quote(deployment, safe='')}/chat/completions"
        return upstream_url(provider, f"{path}?api-version={provider.api_version}")
    return upstream_url(provider, "/openai/v1/chat/completions")


def _headers(provider: ProviderConfig) -> Mapping[str, str]:
    return _headers_for(provider.api_key, provider.azure_ad_token, tuple(provider.headers.items()))


@lru_cache(maxsize=256)
def _headers_for(api_key: str, token: str, extra: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """One credential only (validation refuses both): the token as Bearer, else the key."""
    own = {"authorization", "api-key", "content-type"}
    headers = {k: v for k, v in extra if k.lower() not in own}
    if token:
        headers["authorization"] = f"Bearer {token}"
    else:
        headers["api-key"] = api_key
    headers["content-type"] = "application/json"
    return MappingProxyType(headers)


def error_from_azure(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """OpenAI's mapping, plus what Azure says differently: a prompt its content filter refused
    (400 ``content_filter``), an unknown deployment, and a bare 404 (wrong ``api_version`` or
    ``base_url``: a configuration error, not an unknown model)."""
    message, _, code, param = error_fields(body)
    if status == 400 and code == CONTENT_FILTER:
        detail = f" ({message})" if message else ""
        return GatewayError(
            ErrorType.INVALID_REQUEST,
            f"Azure OpenAI's content filter refused the prompt{detail}.",
            param=param,
            code=CONTENT_FILTER,
            upstream_status=status,
        )
    if status == 404 and code != DEPLOYMENT_NOT_FOUND:
        return GatewayError(
            ErrorType.PROVIDER_ERROR,
            "Azure OpenAI answered 404 'Resource not found': check the provider's base_url "
            "and api_version (an unknown deployment would say DeploymentNotFound).",
            code="azure_resource_not_found",
            upstream_status=status,
        )
    if status == 403:  # Entra ID role or network rule: the credential cannot do this
        return GatewayError(
            ErrorType.INVALID_API_KEY,
            message or "Azure OpenAI refused the credential (HTTP 403).",
            code=code,
            upstream_status=status,
        )
    return error_from_openai(status, body, headers)


def responses_request(provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
    """Azure's Responses API lives on its v1 API whatever ``api_version`` says (the classic
    versions predate it): ``{base_url}/openai/v1/responses``, ``model`` = the deployment."""
    return UpstreamRequest(
        "POST", upstream_url(provider, "/openai/v1/responses"), _headers(provider), body
    )


VENDOR = AzureOpenAIVendor()
VENDOR.natives = MappingProxyType(
    {
        responses.NAME: NativeDialect(
            VENDOR, responses.NAME, responses_request, responses.usage_from_responses
        )
    }
)
"""Azure speaks the Responses API too: passed through, stateful features included."""
