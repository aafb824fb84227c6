"""OpenAI Chat Completions: the unified format itself, so no translation, only transport,
a cheap inbound check and the error mapping (MAPPING.md §1 and §6). Both spokes of the hub
for it are identities: the vendor's wire and the ``/v1/chat/completions`` client dialect."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from proxy.config.snapshot import ProviderConfig
from proxy.errors import ErrorType, GatewayError, invalid_request
from proxy.pricing import Usage
from proxy.providers import responses
from proxy.providers.base import (
    NativeDialect,
    StreamFraming,
    StreamTranslator,
    UpstreamRequest,
    upstream_url,
)
from proxy.providers.checks import check_numbers
from proxy.providers.openai_framing import ChatStreamFraming
from proxy.providers.openai_ids import fit_tool_call_ids

if TYPE_CHECKING:
    from proxy.engine.route import Target

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMERIC = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGER = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")


class OpenAIVendor:
    """``type: openai``: ``Authorization: Bearer``, ``{base_url}/chat/completions``."""

    wire = "openai"
    natives: Mapping[str, NativeDialect] = MappingProxyType({})
    """Client dialects this API also speaks as is; empty here, so a subclass (an
    OpenAI-compatible server, Azure) never inherits OpenAI's own Responses endpoint."""

    def chat_request(self, provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
        return UpstreamRequest(
            "POST", upstream_url(provider, "/chat/completions"), _headers(provider), body
        )

    def health_request(self, provider: ProviderConfig) -> UpstreamRequest:
        return UpstreamRequest("GET", upstream_url(provider, "/models"), _headers(provider))

    def error_from_upstream(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        return error_from_openai(status, body, headers)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage.read_openai(response.get("usage"))

    def request_from_unified(
        self, unified: dict[str, Any], target: Target
    ) -> tuple[dict[str, Any], list[str]]:
        """The unified request itself, for the upstream model; a stream asks for usage, and
        tool-call ids too long for OpenAI are shortened (:mod:`proxy.providers.openai_ids`)."""
        out = dict(unified)
        out["model"] = target.upstream_model
        messages = fit_tool_call_ids(out.get("messages"))
        if messages is not None:
            out["messages"] = messages
        if out.get("stream"):
            options = out.get("stream_options")
            out["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                     "include_usage": True}  # fmt: skip
        return out, []

    def response_to_unified(self, response: dict[str, Any], created: int) -> dict[str, Any]:
        return response

    def stream_to_unified(self, created: int) -> StreamTranslator | None:
        return None


class OpenAIDialect:
    """``/v1/chat/completions``: the unified format, so every translation is the identity."""

    name = "openai"

    def validate(self, body: Any) -> None:
        validate_chat_request(body)

    def request_to_unified(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def response_from_unified(self, response: dict[str, Any]) -> dict[str, Any]:
        return response

    def stream_from_unified(self, model: str) -> StreamTranslator | None:
        return None

    def stream_framing(self) -> StreamFraming:
        return ChatStreamFraming()


def _headers(provider: ProviderConfig) -> Mapping[str, str]:
    return _headers_for(provider.api_key, tuple(provider.headers.items()))


@lru_cache(maxsize=256)
def _headers_for(api_key: str, extra: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """Built once per key and header set, not once per request."""
    return MappingProxyType(
        {**dict(extra), "authorization": f"Bearer {api_key}", "content-type": "application/json"}
    )


def error_fields(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, code, param) from an OpenAI-shaped error body, tolerating garbage."""
    try:
        error = orjson.loads(body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return "", None, None, None
    if not isinstance(error, dict):
        return str(error), None, None, None
    code = error.get("code")
    return (
        str(error.get("message") or ""),
        error.get("type"),
        str(code) if code is not None else None,
        error.get("param"),
    )


def error_from_openai(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Map an OpenAI (or OpenAI-compatible) error response onto the contract's taxonomy."""
    message, kind, code, param = error_fields(body)
    message = message or f"upstream answered HTTP {status}"
    # Both forms are kept on every retryable error: the attempt loop waits as they ask.
    retry_after, retry_after_ms = headers.get("retry-after"), headers.get("retry-after-ms")
    if status == 429:
        quota = code == "insufficient_quota" or kind == "insufficient_quota"
        return GatewayError(
            ErrorType.RATE_LIMIT_EXCEEDED,
            message,
            code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            upstream_status=status,
            retryable=not quota,
            counts_against_provider=True,
        )
    if status in (400, 413, 422):
        return GatewayError(
            ErrorType.INVALID_REQUEST, message, param=param, code=code, upstream_status=status
        )
    if status == 401:
        return GatewayError(ErrorType.INVALID_API_KEY, message, code=code, upstream_status=status)
    if status == 404:
        return GatewayError(
            ErrorType.MODEL_NOT_FOUND, message, param=param, code=code, upstream_status=status
        )
    if status in (408, 504):
        return GatewayError(
            ErrorType.TIMEOUT,
            message,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            upstream_status=status,
            retryable=True,
            counts_against_provider=True,
        )
    if status >= 500:
        return GatewayError(
            ErrorType.PROVIDER_ERROR,
            message,
            code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            upstream_status=status,
            retryable=True,
            counts_against_provider=True,
            overloaded=status in (503, 529),
        )
    return GatewayError(ErrorType.PROVIDER_ERROR, message, code=code, upstream_status=status)


def validate_chat_request(body: Any) -> None:
    """A cheap hot-path check of an inbound Chat Completions body; names the bad field.

    It checks what the gateway itself relies on (model, messages, stream flags, numeric
    types); the upstream remains the judge of the finer rules and answers its own 400.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required and must be a non-empty string.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        _check_message(message, index)
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise invalid_request("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid_request("'stream_options' must be an object.", "stream_options")
    check_numbers(body, _NUMERIC, _INTEGER)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", "tools")


def _check_message(message: Any, index: int) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise invalid_request(f"'{where}' must be an object.", where)
    role = message.get("role")
    if role not in _ROLES:
        raise invalid_request(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}.",
            f"{where}.role",
        )
    content = message.get("content")
    if content is None:
        if role in ("assistant", "function") or (role == "assistant" and message.get("tool_calls")):
            return
        raise invalid_request(
            f"'{where}.content' is required for role '{role}'.", f"{where}.content"
        )
    if not isinstance(content, str | list):
        raise invalid_request(
            f"'{where}.content' must be a string or an array of parts.", f"{where}.content"
        )
    if isinstance(content, list):
        for part_index, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                path = f"{where}.content[{part_index}]"
                raise invalid_request(f"'{path}' must be an object with a 'type'.", path)


def _responses_request(provider: ProviderConfig, body: bytes, stream: bool) -> UpstreamRequest:
    return UpstreamRequest("POST", upstream_url(provider, "/responses"), _headers(provider), body)


VENDOR = OpenAIVendor()
VENDOR.natives = MappingProxyType(
    {
        responses.NAME: NativeDialect(
            VENDOR, responses.NAME, _responses_request, responses.usage_from_responses
        )
    }
)
"""OpenAI's own API speaks the Responses API at ``{base_url}/responses``: passed through."""
DIALECT = OpenAIDialect()
