"""Anthropic errors onto the contract's taxonomy (every kit sample), and the Vendor transport."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.config.snapshot import ProviderConfig
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import Usage
from proxy.providers.anthropic import VENDOR, AnthropicVendor
from proxy.providers.anthropic.errors import (
    error_event_to_gateway,
    error_from_anthropic,
    openai_stream_error_to_gateway,
)
from proxy.sse import iter_events
from tests.kit import KIT

ANTHROPIC_ERROR = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/error.schema.json").read_text())
)
OPENAI_ERROR = Draft202012Validator(
    json.loads((KIT / "schemas/openai/error.schema.json").read_text())
)
SAMPLES = sorted((KIT / "samples/anthropic/errors").glob("*.json"))

# status -> (type, retryable, counts against the provider, overloaded)
EXPECTED: dict[int, tuple[ErrorType, bool, bool, bool]] = {
    400: (ErrorType.INVALID_REQUEST, False, False, False),
    401: (ErrorType.INVALID_API_KEY, False, False, False),
    404: (ErrorType.MODEL_NOT_FOUND, False, False, False),
    429: (ErrorType.RATE_LIMIT_EXCEEDED, True, True, False),
    500: (ErrorType.PROVIDER_ERROR, True, True, False),
    529: (ErrorType.PROVIDER_ERROR, True, True, True),
}


def check_bodies(error: GatewayError) -> None:
    """Whatever it maps to renders as a valid error in both client dialects."""
    ANTHROPIC_ERROR.validate(error.anthropic_body())
    OPENAI_ERROR.validate(error.openai_body())


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_kit_error_sample(path: Path) -> None:
    sample = json.loads(path.read_text())
    status, headers = sample["status"], sample["headers"]
    error = error_from_anthropic(status, orjson.dumps(sample["body"]), headers)
    kind, retryable, counts, overloaded = EXPECTED[status]
    assert (error.type, error.retryable, error.counts_against_provider, error.overloaded) == (
        kind,
        retryable,
        counts,
        overloaded,
    )
    assert error.message == sample["body"]["error"]["message"]  # the vendor's own words
    assert error.upstream_status == status
    assert error.retry_after == headers.get("retry-after")
    for value in headers.values():  # request ids, org ids, rate-limit values: none leak
        if len(value) > 8:
            assert value not in error.message or value in sample["body"]["error"]["message"]
    check_bodies(error)


def test_retry_after_is_passed_on() -> None:
    sample = json.loads((KIT / "samples/anthropic/errors/429.json").read_text())
    error = error_from_anthropic(429, orjson.dumps(sample["body"]), sample["headers"])
    assert error.retry_after == "17"
    assert error.headers()["retry-after"] == "17"
    mixed_case = error_from_anthropic(429, orjson.dumps(sample["body"]), {"Retry-After": "3"})
    assert mixed_case.retry_after == "3"


def body(kind: str, message: str = "msg") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(
    ("status", "kind", "expected", "retryable", "counts"),
    [
        (402, "billing_error", ErrorType.PROVIDER_ERROR, False, False),
        (403, "permission_error", ErrorType.PROVIDER_ERROR, False, False),
        (413, "request_too_large", ErrorType.INVALID_REQUEST, False, False),
        (502, "api_error", ErrorType.PROVIDER_ERROR, True, True),
        (503, "api_error", ErrorType.PROVIDER_ERROR, True, True),
        (504, "timeout_error", ErrorType.TIMEOUT, True, True),
        # error types "will grow": unknown ones are mapped by status
        (400, "brand_new_error", ErrorType.INVALID_REQUEST, False, False),
        (429, "brand_new_error", ErrorType.RATE_LIMIT_EXCEEDED, True, True),
        (503, "brand_new_error", ErrorType.PROVIDER_ERROR, True, True),
        (418, "brand_new_error", ErrorType.PROVIDER_ERROR, False, False),
    ],
)
def test_error_table(
    status: int, kind: str, expected: ErrorType, retryable: bool, counts: bool
) -> None:
    error = error_from_anthropic(status, body(kind), {})
    assert (error.type, error.retryable, error.counts_against_provider) == (
        expected,
        retryable,
        counts,
    )
    check_bodies(error)


def test_request_too_large_keeps_its_anthropic_type() -> None:
    error = error_from_anthropic(413, body("request_too_large"), {})
    assert error.status == 400 and error.code == "request_too_large"


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (400, ErrorType.PROVIDER_ERROR, False),  # an HTML 400 says nothing about the request
        (404, ErrorType.PROVIDER_ERROR, False),  # ... nor a wrong base_url about the model
        (413, ErrorType.INVALID_REQUEST, False),  # Cloudflare's 413 page is HTML
        (429, ErrorType.RATE_LIMIT_EXCEEDED, True),
        (502, ErrorType.PROVIDER_ERROR, True),
        (504, ErrorType.TIMEOUT, True),
        (529, ErrorType.PROVIDER_ERROR, True),
    ],
)
@pytest.mark.parametrize("raw", [b"<html>Bad Gateway</html>", b"", b"[1]", b'{"error": "x"}'])
def test_garbage_bodies(status: int, expected: ErrorType, retryable: bool, raw: bytes) -> None:
    error = error_from_anthropic(status, raw, {"x-api-key": "sk-ant-secret"})
    assert (error.type, error.retryable) == (expected, retryable)
    assert f"HTTP {status}" in error.message and "not an Anthropic error" in error.message
    assert "sk-ant-secret" not in error.message
    check_bodies(error)


def test_stream_error_event_sample() -> None:
    events = list(iter_events((KIT / "samples/anthropic/messages.stream.error.sse").read_bytes()))
    assert events[-1].name == "error"
    error = error_event_to_gateway(orjson.loads(events[-1].data))
    assert (error.type, error.overloaded, error.message) == (
        ErrorType.PROVIDER_ERROR,
        True,
        "Overloaded",
    )
    assert error.anthropic_body()["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"type": "error", "error": {"type": "rate_limit_error", "message": "m"}},
            ErrorType.RATE_LIMIT_EXCEEDED,
        ),
        (
            {"type": "error", "error": {"type": "whatever_next", "message": "m"}},
            ErrorType.PROVIDER_ERROR,
        ),
        ({"type": "error"}, ErrorType.PROVIDER_ERROR),
    ],
)
def test_stream_error_events(payload: dict[str, Any], expected: ErrorType) -> None:
    error = error_event_to_gateway(payload)
    assert error.type is expected and error.message
    check_bodies(error)


@pytest.mark.parametrize(
    ("error", "anthropic_type"),
    [
        ({"message": "m", "type": "server_error", "param": None, "code": None}, "api_error"),
        ({"message": "m", "type": "tokens", "code": "rate_limit_exceeded"}, "rate_limit_error"),
        ({"message": "m", "type": "invalid_request_error", "code": None}, "invalid_request_error"),
        ({"message": "m", "type": "provider_error", "code": "provider_error"}, "api_error"),
        ({"message": "m", "type": "timeout", "code": "timeout"}, "timeout_error"),
        (
            {"message": "Overloaded", "type": "server_error", "code": "overloaded"},
            "overloaded_error",
        ),
        ("just a string", "api_error"),
    ],
)
def test_openai_stream_errors_for_anthropic_clients(error: Any, anthropic_type: str) -> None:
    mapped = openai_stream_error_to_gateway(error)
    assert mapped.anthropic_type() == anthropic_type
    check_bodies(mapped)


# -- the Vendor object ----------------------------------------------------------------------

PROVIDER = ProviderConfig(
    name="anthropic",
    type="anthropic",
    base_url="https://api.anthropic.com/",
    api_key="sk-ant-key",
    anthropic_version="2023-06-01",
    headers={"anthropic-beta": "a,b", "X-Api-Key": "not-this-one"},
)


def test_chat_request() -> None:
    request = VENDOR.chat_request(PROVIDER, b"{}", stream=True)
    assert (request.method, request.url, request.body) == (
        "POST",
        "https://api.anthropic.com/v1/messages",
        b"{}",
    )
    assert dict(request.headers) == {
        "anthropic-beta": "a,b",
        "x-api-key": "sk-ant-key",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "accept": "text/event-stream",
    }
    assert "accept" not in VENDOR.chat_request(PROVIDER, b"{}", stream=False).headers


def test_health_request() -> None:
    request = VENDOR.health_request(PROVIDER)
    assert (request.method, request.url) == ("GET", "https://api.anthropic.com/v1/models?limit=1")
    assert request.headers["x-api-key"] == "sk-ant-key"
    assert request.headers["anthropic-version"] == "2023-06-01"


def test_vendor_errors_and_usage() -> None:
    assert isinstance(VENDOR, AnthropicVendor) and VENDOR.wire == "anthropic"
    error = VENDOR.error_from_upstream(401, body("authentication_error", "invalid x-api-key"), {})
    assert error.type is ErrorType.INVALID_API_KEY
    resp = json.loads((KIT / "samples/anthropic/messages.response.tool_use.json").read_text())
    assert VENDOR.usage(resp) == Usage(
        prompt_tokens=412 + 1210, completion_tokens=121, cached_tokens=0, cache_write_tokens=1210
    )
