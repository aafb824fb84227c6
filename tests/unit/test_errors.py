import asyncio
import contextlib
import dataclasses

import pytest

from proxy.errors import ErrorType, GatewayError, too_large


def test_gateway_error_fields_are_frozen_but_it_passes_through_context_managers():
    error = GatewayError(ErrorType.TIMEOUT, "slow")
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.message = "changed"  # type: ignore[misc]

    @contextlib.asynccontextmanager
    async def lease():
        yield

    async def fail() -> None:
        async with lease():
            raise error

    with pytest.raises(GatewayError) as caught:
        asyncio.run(fail())
    assert caught.value is error and error.__traceback__ is not None


def test_both_dialect_bodies_and_headers():
    error = GatewayError(ErrorType.RATE_LIMIT_EXCEEDED, "slow down", retry_after="3")
    assert error.status == 429
    assert error.openai_body()["error"]["type"] == "rate_limit_exceeded"
    assert error.anthropic_body() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert error.headers()["x-llm-error"] == "rate_limit_exceeded"
    assert error.headers()["retry-after"] == "3"
    big = too_large(10)
    assert big.status == 413 and big.anthropic_type() == "request_too_large"
