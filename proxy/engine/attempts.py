"""The attempt loop: retries with backoff, one total deadline, circuit breakers, fallbacks.

A call walks its targets (the model, then its ``fallbacks``). Each target gets up to
``1 + max_retries`` attempts while its provider's breaker allows. A retryable failure waits
(``retry-after(-ms)`` if the upstream gave one, else exponential backoff with jitter) unless
the wait would cross the deadline, or the upstream asks for more than ``max_retry_after_ms``:
then that target is done and the next one is tried at once. A non-retryable failure
(400/401/403/404/413/422) ends the call. Nothing here retries once a byte went to the client:
a stream is handed over only after its first event; failures after that are the relay's.

The error a failed call reports is the last one an upstream actually gave; "circuit open" or
"deadline passed" only when nothing better is known, so a client sees the real cause.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from proxy.capabilities.checks import adjust, refusal
from proxy.capabilities.model import UNKNOWN
from proxy.capabilities.needs import Needs, needs_of
from proxy.config.snapshot import RetryPolicy, Snapshot
from proxy.engine.backoff import asked_wait_s, backoff_s
from proxy.engine.breaker import Breaker, Breakers, State
from proxy.engine.dialects import native_target, upstream_body
from proxy.engine.route import Target, chain, resolve
from proxy.errors import ErrorType, GatewayError

T = TypeVar("T")
SUCCESS, CANCELLED = "success", "cancelled"  # attempt outcomes besides the error types
Once = Callable[[Target, bytes, float], Awaitable[T]]
"""One attempt: ``once(target, body, remaining_s)``; raises GatewayError on failure."""


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
    client_deadline: bool = False
    """The client asked for a shorter deadline: hitting it is not the provider's fault."""
    cache: Any = None
    """This request's proxy.engine.cache.Lookup, when the response cache applies to it."""
    skipped: tuple[str, ...] = ()
    """Models passed over before any attempt because they lack a capability the request needs,
    as ``model:capability`` (the response's ``x-llm-capability-fallback``)."""
    ticket: Any = None
    """Its budgets' and rate limits' admission (proxy.engine.limits.Ticket), if any apply."""
    excluded: frozenset[str] = frozenset()
    """Fallback models its budgets cannot cover: the chain skips them."""
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    """(model, provider, outcome) of every attempt: ``success``, ``cancelled`` or the error
    type; failed attempts are counted in metrics, not by the breaker."""


class CallFailed(Exception):
    """The call's final error, with the target that produced it (for headers and metrics)."""

    def __init__(self, error: GatewayError, target: Target | None) -> None:
        super().__init__(str(error))
        self.error, self.target = error, target


def _deadline_error() -> GatewayError:
    return GatewayError(
        ErrorType.TIMEOUT,
        "The request's deadline passed before the upstream answered.",
        retryable=False,
        counts_against_provider=False,
    )


def _circuit_open(target: Target, breaker: Breaker) -> GatewayError:
    return GatewayError(
        ErrorType.PROVIDER_ERROR,
        f"Provider '{target.provider.name}' is failing; its circuit breaker is open.",
        code="circuit_open",
        retry_after=str(max(math.ceil(breaker.retry_in()), 1)),
        retryable=True,
    )


async def run(call: Call, breakers: Breakers, once: Once[T]) -> tuple[T, Target]:
    """Run ``once`` against the call's targets until one succeeds; raise CallFailed otherwise."""
    primary = resolve(call.snapshot, str(call.body.get("model")))
    last: GatewayError | None = None  # the last error an upstream gave
    fallback: GatewayError | None = None  # circuit open / deadline: only if nothing better
    refused: GatewayError | None = None  # the primary cannot serve it: unless a fallback can
    last_target: Target | None = primary
    targets = chain(call.snapshot, primary)
    needs = _needs(call, targets)
    for target in targets:
        if target.model.name in call.excluded:
            continue
        target = native_target(call.dialect, target)  # speaks the dialect as is?
        if time.monotonic() >= call.deadline:
            fallback = fallback or _deadline_error()
            break
        lacks = refusal(target.model, needs) if needs is not None else None
        if lacks is not None:  # before any upstream call: try the next model instead
            capability, error = lacks
            refused = refused or error
            call.skipped += (f"{target.model.name}:{capability}",)
            continue
        try:
            body, dropped = upstream_body(call.dialect, call.body, call.raw, target)
        except GatewayError as error:
            if target.model is primary.model:
                raise CallFailed(error, target) from None
            continue  # this fallback cannot take the request; others may
        body = adjust(body, target.vendor.wire, target.model, needs)
        call.dropped = tuple(dropped)
        try:
            return await _attempt_target(call, breakers, target, body, once), target
        except _NoAttempt as skipped:
            fallback = fallback or skipped.error
            last_target = last_target if last is not None else target
        except GatewayError as error:
            last, last_target = error, target
            if not error.retryable:
                break
    raise CallFailed(last or fallback or refused or _deadline_error(), last_target)


def _needs(call: Call, targets: list[Target]) -> Needs | None:
    """What the request needs, read only when some target has capabilities to check."""
    if all(t.model.capabilities is UNKNOWN for t in targets):
        return None
    return needs_of(call.dialect, call.body)


class _NoAttempt(Exception):
    """A target was skipped before any attempt (circuit open, deadline already passed)."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


async def _attempt_target(
    call: Call, breakers: Breakers, target: Target, body: bytes, once: Once[T]
) -> T:
    """Up to ``1 + max_retries`` attempts on one target; raises its last error.

    The breaker judges the request, not its attempts: it gets one verdict when the target is
    done with (a success however many attempts failed, or one failure), so a provider that
    answers every request within its retries keeps a closed circuit.
    """
    breaker = breakers.get(target.provider.name, target.provider.breaker)
    if call.deadline - time.monotonic() <= 0:
        raise _NoAttempt(_deadline_error())
    if not breaker.allow():
        raise _NoAttempt(_circuit_open(target, breaker))
    probe = breaker.transitions if breaker.state is State.HALF_OPEN else None
    try:
        result = await _attempts(call, breaker, probe, target, body, once)
    except _TargetFailed as failed:
        if failed.counts:
            breaker.record_failure()
        elif probe is not None:
            breaker.release_probe(probe)
        raise failed.error from None
    except BaseException:  # cancelled (client gone) or a bug: no verdict on the provider
        if probe is not None:
            breaker.release_probe(probe)
        raise
    breaker.record_success()
    return result


class _TargetFailed(Exception):
    """A target's attempts ended in ``error``; ``counts``: a verdict against its provider."""

    def __init__(self, error: GatewayError, counts: bool) -> None:
        super().__init__(str(error))
        self.error, self.counts = error, counts


async def _attempts(
    call: Call, breaker: Breaker, probe: int | None, target: Target, body: bytes, once: Once[T]
) -> T:
    """The attempt loop on one target; every attempt's outcome goes to ``call.outcomes``."""
    policy = target.model.retry
    names = (target.model.name, target.provider.name)
    failed = _TargetFailed(_deadline_error(), False)
    for retry in range(policy.max_retries + 1):
        remaining = call.deadline - time.monotonic()
        if retry and (remaining <= 0 or not _still_allowed(breaker, probe)):
            raise failed  # the circuit opened meanwhile: report what the upstream said
        call.attempts += 1
        started = time.perf_counter()
        outcome = CANCELLED
        try:
            result = await once(target, body, remaining)
            outcome = SUCCESS
            return result
        except GatewayError as error:
            failed = _judge(call, error)
            outcome = str(failed.error.type)
        finally:
            call.upstream_s += time.perf_counter() - started
            call.outcomes.append((*names, outcome))
        delay = _wait_before_retry(policy, retry, failed.error)
        if delay is None or time.monotonic() + delay >= call.deadline:
            raise failed
        call.waited_s += delay
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _still_allowed(breaker: Breaker, probe: int | None) -> bool:
    """May a request that already made attempts retry? Not once other requests' verdicts (or
    health checks) opened its provider's circuit; a half-open probe keeps its own slot."""
    if not breaker.settings.enabled:
        return True
    if probe is not None:
        return breaker.state is State.HALF_OPEN and breaker.transitions == probe
    return breaker.state is State.CLOSED


def _judge(call: Call, error: GatewayError) -> _TargetFailed:
    """What a failed attempt says about the provider, and the error to keep."""
    cut = (
        error.type is ErrorType.TIMEOUT
        and error.upstream_status is None
        and time.monotonic() >= call.deadline - 0.001
    )
    if cut:  # our total deadline ended it: the provider's fault only against the configured
        # budget; a shorter deadline the client chose says nothing about the provider
        return _TargetFailed(_deadline_error(), not call.client_deadline)
    return _TargetFailed(error, error.counts_against_provider)


def _wait_before_retry(policy: RetryPolicy, retry: int, error: GatewayError) -> float | None:
    """Seconds to wait before the next attempt, or None when this target should not retry."""
    if not error.retryable or retry >= policy.max_retries:
        return None
    asked = asked_wait_s(error)
    if asked is None:
        return backoff_s(policy, retry + 1)
    if asked * 1000 > policy.max_retry_after_ms:
        return None  # longer than we will hold a request: fall back or report it now
    return asked
