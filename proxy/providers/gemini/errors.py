"""Google's ``{"error": {code, status, message, details}}`` onto the taxonomy (MAPPING §7).

A 429 carries no ``Retry-After`` header: the wait is ``RetryInfo.retryDelay`` in the body
(``"7s"``, ``"0.5s"``); it becomes the error's ``retry_after``/``retry_after_ms``, which the
attempt loop waits and the client gets as ``retry-after``. Key and credential problems (400
``API_KEY_INVALID``, 401, 403) are ``invalid_api_key``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import ErrorType, GatewayError

JSON = dict[str, Any]
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "CONSUMER_SUSPENDED"}
)
_BY_STATUS = {
    "UNAUTHENTICATED": ErrorType.INVALID_API_KEY,
    "PERMISSION_DENIED": ErrorType.INVALID_API_KEY,
    "NOT_FOUND": ErrorType.MODEL_NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorType.RATE_LIMIT_EXCEEDED,
    "INVALID_ARGUMENT": ErrorType.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorType.INVALID_REQUEST,
    "OUT_OF_RANGE": ErrorType.INVALID_REQUEST,
    "DEADLINE_EXCEEDED": ErrorType.TIMEOUT,
}
_BY_CODE = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.INVALID_API_KEY,
    403: ErrorType.INVALID_API_KEY,
    404: ErrorType.MODEL_NOT_FOUND,
    413: ErrorType.INVALID_REQUEST,
    429: ErrorType.RATE_LIMIT_EXCEEDED,
    408: ErrorType.TIMEOUT,
    504: ErrorType.TIMEOUT,
}


def _fields(error: Any) -> tuple[str, str, list[JSON]]:
    if not isinstance(error, dict):
        return str(error or ""), "", []
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    return str(error.get("message") or ""), str(error.get("status") or ""), details


def _detail(details: list[JSON], kind: str) -> JSON:
    return next((d for d in details if d.get("@type") == kind), {})


def retry_delay(details: list[JSON]) -> tuple[str | None, str | None]:
    """(``retry-after`` in whole seconds rounded up, ``retry-after-ms``) from ``RetryInfo``."""
    delay = _detail(details, _RETRY_INFO).get("retryDelay")
    if isinstance(delay, dict):  # the proto form {"seconds": 7, "nanos": ...}
        delay = f"{delay.get('seconds', 0)}.{int(delay.get('nanos', 0)):09d}s"
    if not isinstance(delay, str) or not delay.endswith("s"):
        return None, None
    try:
        seconds = float(delay[:-1])
    except ValueError:
        return None, None
    if not math.isfinite(seconds) or seconds < 0:
        return None, None
    return str(math.ceil(seconds)), str(round(seconds * 1000))


def _classify(status: int, kind: str, details: list[JSON]) -> ErrorType:
    reason = _detail(details, _ERROR_INFO).get("reason")
    if reason in _KEY_REASONS:
        return ErrorType.INVALID_API_KEY
    return _BY_STATUS.get(kind) or _BY_CODE.get(status) or ErrorType.PROVIDER_ERROR


def error_from_google(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # a streamed JSON array
        error = data[0].get("error")
    message, kind, details = _fields(error)
    return _gateway_error(status, kind, message or f"upstream answered HTTP {status}", details)


def _gateway_error(status: int, kind: str, message: str, details: list[JSON]) -> GatewayError:
    error_type = _classify(status, kind, details)
    code = kind or None
    if error_type is ErrorType.RATE_LIMIT_EXCEEDED:
        seconds, millis = retry_delay(details)
        return GatewayError(
            error_type,
            message,
            code=code,
            retry_after=seconds,
            retry_after_ms=millis,
            upstream_status=status,
            retryable=True,
            counts_against_provider=True,
        )
    if error_type is ErrorType.TIMEOUT or (
        error_type is ErrorType.PROVIDER_ERROR and status >= 500
    ):
        return GatewayError(
            error_type,
            message,
            code=code,
            upstream_status=status,
            retryable=True,
            counts_against_provider=True,
            overloaded=status == 503,
        )
    return GatewayError(error_type, message, code=code, upstream_status=status)


def stream_error(error: Any) -> GatewayError:
    """An ``{"error": ...}`` event inside a stream."""
    message, kind, details = _fields(error)
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) else 500
    return _gateway_error(status, kind, message or "The upstream reported an error mid-stream.",
                          details)  # fmt: skip
