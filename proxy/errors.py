"""The contract's error taxonomy: one set of error values, rendered in either client dialect.

Every failure on the request path becomes a :class:`GatewayError` whose ``type`` comes from
the contract's table, whatever the vendor said; the HTTP layer renders it as an OpenAI or an
Anthropic error body and stamps ``x-llm-error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorType(StrEnum):
    """The contract's error types (``x-llm-error`` and ``error.type`` on /v1/chat/completions)."""

    INVALID_API_KEY = "invalid_api_key"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INVALID_REQUEST = "invalid_request"
    MODEL_NOT_FOUND = "model_not_found"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    PROVIDER_ERROR = "provider_error"
    # Inbound auth (issue 7) is not an upstream verdict; 401 like a bad key, distinct type.
    UNAUTHORIZED = "unauthorized"
    # Shutting down (issue 7): a new request during the drain; the next one goes elsewhere.
    UNAVAILABLE = "unavailable"
    # The gateway's own spend budget or rate limit (issue 17): refused before any upstream call.
    BUDGET_EXCEEDED = "budget_exceeded"


STATUS: dict[ErrorType, int] = {
    ErrorType.INVALID_API_KEY: 401,
    ErrorType.RATE_LIMIT_EXCEEDED: 429,
    ErrorType.INVALID_REQUEST: 400,
    ErrorType.MODEL_NOT_FOUND: 404,
    ErrorType.TIMEOUT: 504,
    ErrorType.HTTP_ERROR: 502,
    ErrorType.PROVIDER_ERROR: 502,
    ErrorType.UNAUTHORIZED: 401,
    ErrorType.UNAVAILABLE: 503,
    ErrorType.BUDGET_EXCEEDED: 429,
}

# Anthropic's own error types for the same situations (its SDK maps these to exceptions).
ANTHROPIC_TYPE: dict[ErrorType, str] = {
    ErrorType.INVALID_API_KEY: "authentication_error",
    ErrorType.RATE_LIMIT_EXCEEDED: "rate_limit_error",
    ErrorType.INVALID_REQUEST: "invalid_request_error",
    ErrorType.MODEL_NOT_FOUND: "not_found_error",
    ErrorType.TIMEOUT: "timeout_error",
    ErrorType.HTTP_ERROR: "api_error",
    ErrorType.PROVIDER_ERROR: "api_error",
    ErrorType.UNAUTHORIZED: "authentication_error",
    ErrorType.UNAVAILABLE: "overloaded_error",
    ErrorType.BUDGET_EXCEEDED: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class GatewayError(Exception):
    """A failure with a contract type; raised or returned, never a bare string.

    ``retryable`` says whether another attempt could succeed (5xx, 429, 529, transport);
    ``counts_against_provider`` whether the circuit breaker should count it (provider-side
    failures only: a bad request or key must never open the breaker).
    """

    type: ErrorType
    message: str
    param: str | None = None
    code: str | None = None
    status_override: int | None = None
    retry_after: str | None = None
    upstream_status: int | None = None
    retryable: bool = False
    counts_against_provider: bool = False
    overloaded: bool = False
    retry_after_ms: str | None = None
    """The upstream's ``retry-after-ms`` (OpenAI's finer form), passed on like ``retry_after``."""

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    @property
    def status(self) -> int:
        return self.status_override or STATUS[self.type]

    def openai_body(self) -> dict[str, Any]:
        """The OpenAI error shape the contract promises on /v1/chat/completions."""
        return {
            "error": {
                "message": self.message,
                "type": str(self.type),
                "code": self.code or str(self.type),
                "param": self.param,
            }
        }

    def anthropic_type(self) -> str:
        if self.overloaded:
            return "overloaded_error"
        if self.status == 413:
            return "request_too_large"
        return ANTHROPIC_TYPE[self.type]

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic's error shape for /v1/messages clients."""
        return {"type": "error", "error": {"type": self.anthropic_type(), "message": self.message}}

    def body(self, dialect: str) -> dict[str, Any]:
        """The error body a client of ``dialect`` expects: Anthropic's shape for "anthropic",
        OpenAI's for "openai" and "responses" (the Responses API answers errors alike)."""
        return self.anthropic_body() if dialect == "anthropic" else self.openai_body()

    def headers(self) -> dict[str, str]:
        out = {"x-llm-error": str(self.type)}
        if self.retry_after is not None:
            out["retry-after"] = self.retry_after
        if self.retry_after_ms is not None:
            out["retry-after-ms"] = self.retry_after_ms
        return out


_FROZEN_SETATTR = GatewayError.__setattr__
_EXCEPTION_STATE = frozenset({"__traceback__", "__cause__", "__context__", "__suppress_context__"})


def _setattr(self: GatewayError, name: str, value: object) -> None:
    """Fields stay frozen; the exception's own state does not (contextlib sets
    ``__traceback__`` when an error passes through an ``asynccontextmanager``)."""
    if name in _EXCEPTION_STATE:
        BaseException.__setattr__(self, name, value)
    else:
        _FROZEN_SETATTR(self, name, value)


GatewayError.__setattr__ = _setattr  # type: ignore[method-assign]


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(ErrorType.INVALID_REQUEST, message, param=param)


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        ErrorType.MODEL_NOT_FOUND,
        f"The model '{model}' is not configured on this gateway.",
        param="model",
        code="model_not_found",
    )


def ambiguous_model(model: str, candidates: tuple[str, ...]) -> GatewayError:
    names = ", ".join(f"'{name}'" for name in candidates)
    return GatewayError(
        ErrorType.MODEL_NOT_FOUND,
        f"The model '{model}' is ambiguous on this gateway: it could be {names}. "
        "Ask for one of those.",
        param="model",
        code="model_not_found",
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        ErrorType.INVALID_REQUEST,
        f"Request body exceeds the {limit}-byte limit.",
        code="request_too_large",
        status_override=413,
    )
