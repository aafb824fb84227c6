"""Cohere error responses (``{id, message}``) onto the contract's taxonomy, by status.

Cohere's body carries no error type, so the status decides: 400/413/422 ``invalid_request``,
401/498 ``invalid_api_key`` (498 is Cohere's blocked or invalid token), 404
``model_not_found``, 429 ``rate_limit_exceeded`` (retried), 504 ``timeout`` (retried), other
5xx ``provider_error`` (retried; 501 "not implemented" is not). 499 means the request was
cancelled on the client's side: never retried, and no fault of the provider's. A 4xx whose body
is not Cohere's error (HTML from a proxy, a wrong ``base_url``) says nothing about the client's
request, so it is a ``provider_error`` rather than a misleading "invalid request".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ErrorType, GatewayError

# status -> (contract type, retryable)
_BY_STATUS: dict[int, tuple[ErrorType, bool]] = {
    400: (ErrorType.INVALID_REQUEST, False),
    401: (ErrorType.INVALID_API_KEY, False),
    404: (ErrorType.MODEL_NOT_FOUND, False),
    408: (ErrorType.TIMEOUT, True),
    413: (ErrorType.INVALID_REQUEST, False),
    422: (ErrorType.INVALID_REQUEST, False),
    429: (ErrorType.RATE_LIMIT_EXCEEDED, True),
    498: (ErrorType.INVALID_API_KEY, False),
    499: (ErrorType.PROVIDER_ERROR, False),
    501: (ErrorType.PROVIDER_ERROR, False),
    504: (ErrorType.TIMEOUT, True),
}
# Statuses whose meaning does not depend on a well-formed body.
_STATUS_IS_ENOUGH = frozenset({408, 413, 429, 499, 504})


def error_from_cohere(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Map a Cohere error response (status, raw body, response headers) to a GatewayError."""
    message = _message(body)
    kind, retryable = _BY_STATUS.get(status, (ErrorType.PROVIDER_ERROR, status >= 500))
    if message is None:
        if status not in _STATUS_IS_ENOUGH and status < 500:
            text = f"Cohere answered HTTP {status} with a body that is not a Cohere error."
            return GatewayError(ErrorType.PROVIDER_ERROR, text, upstream_status=status)
        message = f"Cohere answered HTTP {status}."
    retry_after = _header(headers, "retry-after") if retryable else None
    return GatewayError(
        kind,
        message,
        code="request_too_large" if status == 413 else None,
        retry_after=retry_after,
        upstream_status=status,
        retryable=retryable,
        counts_against_provider=retryable,
        overloaded=status == 503,
    )


def _message(body: bytes) -> str | None:
    """The ``message`` of a Cohere error body, or None when the body is not one."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("message"), str):
        return None
    return parsed["message"] or None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)
