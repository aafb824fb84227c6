"""The attempt loop: retries with backoff, one total deadline, circuit breakers, fallbacks.

A call walks its targets (the model, then its ``fallbacks``). Each target gets up to
``1 + max_retries`` attempts while its provider's breaker allows; a retryable failure waits
(``retry-after`` if the upstream gave one, else exponential backoff with jitter) unless the
wait would cross the deadline. A non-retryable failure (400/401/403/404/413/422) ends the call
at once. Nothing here ever retries once a byte went to the client: a stream is handed over only
after its first event, and failures after that are the relay's to report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy.config.snapshot import Snapshot
from proxy.engine.backoff import backoff_s, retry_after_s
from proxy.engine.breaker import Breakers
from proxy.engine.dialects import upstream_body
from proxy.engine.route import Target, chain, resolve
from proxy.errors import ErrorType, GatewayError

T = TypeVar("T")
Once = Callable[[Target, bytes, float], Awaitable[T]]


@dataclass(slots=True)
class Call:
    """One client request as the engine sees it."""

    dialect: str
    body: dict[str, Any]
    raw: bytes
    stream: bool
    snapshot: Snapshot
    request_id: str
    deadline: float  # time.monotonic() by which everything must be over
    dropped: tuple[str, ...] = ()
    attempts: int = 0
    waited_s: float = 0.0
    upstream_s: float = 0.0


class CallFailed(Exception):
    """The call's final error, with the target that produced it (for headers and metrics)."""

    def __init__(self, error: GatewayError, target: Target | None) -> None:
        super().__init__(str(error))
        self.error, self.target = error, target


def _deadline_error() -> GatewayError:
    return GatewayError(
        ErrorType.TIMEOUT,
        "The request's deadline passed before the upstream answered.",
        retryable=True,
        counts_against_provider=False,
    )


def _circuit_open(target: Target) -> GatewayError:
    return GatewayError(
        ErrorType.PROVIDER_ERROR,
        f"Provider '{target.provider.name}' is failing; its circuit breaker is open.",
        code="circuit_open",
        retryable=True,
    )


async def run(call: Call, breakers: Breakers, once: Once[T]) -> tuple[T, Target]:
    """Run ``once`` against the call's targets until one succeeds; raise CallFailed otherwise."""
    primary = resolve(call.snapshot, str(call.body.get("model")))
    last: GatewayError | None = None
    last_target: Target | None = primary
    for target in chain(call.snapshot, primary):
        try:
            body, dropped = upstream_body(call.dialect, call.body, call.raw, target)
        except GatewayError as error:
            if target is primary:
                raise CallFailed(error, target) from None
            continue  # this fallback cannot take the request; others may
        call.dropped = tuple(dropped)
        try:
            return await _attempt_target(call, breakers, target, body, once), target
        except GatewayError as error:
            last, last_target = error, target
            if not error.retryable or time.monotonic() >= call.deadline:
                break
    raise CallFailed(last or _deadline_error(), last_target)


async def _attempt_target(
    call: Call, breakers: Breakers, target: Target, body: bytes, once: Once[T]
) -> T:
    policy = target.model.retry
    breaker = breakers.get(target.provider.name, target.provider.breaker)
    for retry in range(policy.max_retries + 1):
        if not breaker.allow():
            raise _circuit_open(target)
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise _deadline_error()
        call.attempts += 1
        started = time.perf_counter()
        try:
            result = await once(target, body, remaining)
        except GatewayError as error:
            call.upstream_s += time.perf_counter() - started
            _record(breaker, error)
            if not error.retryable or retry == policy.max_retries:
                raise
            delay = _delay(policy, retry + 1, error)
            if time.monotonic() + delay >= call.deadline:
                raise error if error.type is not ErrorType.TIMEOUT else _deadline_error() from None
            call.waited_s += delay
            await asyncio.sleep(delay)
            continue
        call.upstream_s += time.perf_counter() - started
        breaker.record_success()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _record(breaker: Any, error: GatewayError) -> None:
    if error.counts_against_provider:
        breaker.record_failure()
    else:
        breaker.release_probe()


def _delay(policy: Any, retry_number: int, error: GatewayError) -> float:
    asked = retry_after_s(
        {"retry-after": error.retry_after} if error.retry_after else None, policy.max_retry_after_ms
    )
    return asked if asked is not None else backoff_s(policy, retry_number)
