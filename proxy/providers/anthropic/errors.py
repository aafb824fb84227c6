"""Anthropic error responses and stream ``error`` events onto the contract's taxonomy (MAPPING §6).

Anthropic says what went wrong twice: the HTTP status and ``error.type``. The type is the
finer signal (its docs promise new types will appear), so a known type decides and an unknown
one falls back to the status. Retry semantics follow the status classes the contract names:
429, 5xx, 504 and Anthropic's own 529 are retryable and count against the provider; 4xx
verdicts on the request or the key are neither.

A 400/401/404 whose body is not an Anthropic error (HTML from a proxy, a wrong ``base_url``)
says nothing about the client's request, so it becomes a ``provider_error`` rather than a
misleading "invalid request" or "model not found". Messages carry the vendor's own text and
never a request header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ErrorType, GatewayError

# Anthropic error.type -> (contract type, retryable, counts against the provider, overloaded)
_BY_TYPE: dict[str, tuple[ErrorType, bool, bool, bool]] = {
    "invalid_request_error": (ErrorType.INVALID_REQUEST, False, False, False),
    "request_too_large": (ErrorType.INVALID_REQUEST, False, False, False),
    "authentication_error": (ErrorType.INVALID_API_KEY, False, False, False),
    "permission_error": (ErrorType.PROVIDER_ERROR, False, False, False),
    "billing_error": (ErrorType.PROVIDER_ERROR, False, False, False),
    "not_found_error": (ErrorType.MODEL_NOT_FOUND, False, False, False),
    "rate_limit_error": (ErrorType.RATE_LIMIT_EXCEEDED, True, True, False),
    "timeout_error": (ErrorType.TIMEOUT, True, True, False),
    "api_error": (ErrorType.PROVIDER_ERROR, True, True, False),
    "overloaded_error": (ErrorType.PROVIDER_ERROR, True, True, True),
}

_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Statuses whose meaning does not depend on a well-formed body (Cloudflare's 413 is HTML).
_STATUS_IS_ENOUGH = frozenset({408, 413, 429, 504, 529})

# OpenAI stream-error types (and the contract's own) -> contract type, for OpenAI upstreams.
_OPENAI_TYPES: dict[str, ErrorType] = {
    "invalid_request_error": ErrorType.INVALID_REQUEST,
    "invalid_api_key": ErrorType.INVALID_API_KEY,
    "authentication_error": ErrorType.INVALID_API_KEY,
    "rate_limit_exceeded": ErrorType.RATE_LIMIT_EXCEEDED,
    "insufficient_quota": ErrorType.RATE_LIMIT_EXCEEDED,
    "tokens": ErrorType.RATE_LIMIT_EXCEEDED,
    "requests": ErrorType.RATE_LIMIT_EXCEEDED,
    "model_not_found": ErrorType.MODEL_NOT_FOUND,
    "not_found_error": ErrorType.MODEL_NOT_FOUND,
    "timeout": ErrorType.TIMEOUT,
    **{str(kind): kind for kind in ErrorType},
}


def error_from_anthropic(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Map an Anthropic error response (status, raw body, response headers) to a GatewayError."""
    error = _error_object(body)
    retry_after = (_header(headers, "retry-after"), _header(headers, "retry-after-ms"))
    if error is None:
        return _unreadable(status, retry_after)
    kind = str(error.get("type") or "")
    message = str(error.get("message") or "") or f"Anthropic answered HTTP {status}."
    if kind not in _BY_TYPE:
        kind = _BY_STATUS.get(status) or ("api_error" if status >= 500 else "")
    if not kind:
        return GatewayError(ErrorType.PROVIDER_ERROR, message, upstream_status=status)
    return _from_kind(kind, message, status=status, retry_after=retry_after)


def error_event_to_gateway(payload: dict[str, Any]) -> GatewayError:
    """A stream ``event: error`` payload (``{"type":"error","error":{type,message}}``)."""
    error = payload.get("error")
    if not isinstance(error, dict):
        return GatewayError(ErrorType.PROVIDER_ERROR, "Anthropic sent a malformed error event.")
    kind = str(error.get("type") or "")
    message = str(error.get("message") or "") or "Anthropic reported an error mid-stream."
    return _from_kind(kind if kind in _BY_TYPE else "api_error", message)


def openai_stream_error_to_gateway(error: Any) -> GatewayError:
    """An OpenAI mid-stream ``{"error": {...}}`` object, for translating to Anthropic clients."""
    if not isinstance(error, dict):
        return GatewayError(ErrorType.PROVIDER_ERROR, str(error or "Upstream stream error."))
    message = str(error.get("message") or "") or "The upstream reported an error mid-stream."
    kind = _OPENAI_TYPES.get(str(error.get("code") or "")) or _OPENAI_TYPES.get(
        str(error.get("type") or ""), ErrorType.PROVIDER_ERROR
    )
    overloaded = "overload" in f"{error.get('type')} {error.get('code')}".lower()
    return GatewayError(kind, message, overloaded=overloaded)


def _from_kind(
    kind: str,
    message: str,
    *,
    status: int | None = None,
    retry_after: tuple[str | None, str | None] = (None, None),
) -> GatewayError:
    """``retry_after`` is (``retry-after``, ``retry-after-ms``), kept on retryable errors only:
    the attempt loop waits as they ask (a 529 may carry one too)."""
    error_type, retryable, counts, overloaded = _BY_TYPE[kind]
    seconds, millis = retry_after if retryable else (None, None)
    return GatewayError(
        error_type,
        message,
        code="request_too_large" if kind == "request_too_large" else None,
        retry_after=seconds,
        retry_after_ms=millis,
        upstream_status=status,
        retryable=retryable,
        counts_against_provider=counts,
        overloaded=overloaded or status == 529,
    )


def _unreadable(status: int, retry_after: tuple[str | None, str | None]) -> GatewayError:
    message = f"Anthropic answered HTTP {status} with a body that is not an Anthropic error."
    if status in _STATUS_IS_ENOUGH or status >= 500:
        kind = _BY_STATUS.get(status, "api_error")
        return _from_kind(kind, message, status=status, retry_after=retry_after)
    return GatewayError(ErrorType.PROVIDER_ERROR, message, upstream_status=status)


def _error_object(body: bytes) -> dict[str, Any] | None:
    """The ``error`` object of an Anthropic error body, or None when the body is not one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the case of the mapping's keys (plain dicts are not CI)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, found in headers.items():
        if key.lower() == name:
            return found
    return None
