"""Active provider health checks: a cheap authenticated request to each provider, concurrently.

Each check is the vendor's models list (``GET /models``), bounded by the provider's
``health_check.timeout_ms``, on a connection of its own: a busy pool must not make a healthy
provider look dead, and the check should prove that a new connection can be made.

Results feed the circuit breaker: a failure the provider is responsible for (no connection,
timeout, 5xx, 429) counts like a failed request; a passing check ends an open circuit's
cooldown early (half-open: real requests still decide). A rejected key is reported unhealthy
but never counted. With ``health_check.interval_s`` > 0 a background task keeps recent
results, so ``/health/providers`` answers instantly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import asdict, dataclass

from proxy.config.snapshot import PoolSettings, ProviderConfig
from proxy.engine.pool import new_pool
from proxy.engine.state import GatewayState
from proxy.engine.upstream import UPSTREAM_FAULTS, transport_error
from proxy.errors import GatewayError
from proxy.providers.registry import vendor_for

log = logging.getLogger("llm_edge_agent")

_ONE_SHOT = PoolSettings(max_idle_per_host=0, max_connections=1)

# How often the background task looks for due checks (and for intervals a reload turned on).
_IDLE_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    response_time_ms: float
    error: str | None
    checked_at: float

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("checked_at")
        return out


async def check_provider(state: GatewayState, provider: ProviderConfig) -> Health:
    """One check, bounded by the provider's ``health_check.timeout_ms``; feeds its breaker."""
    vendor = vendor_for(provider.type)
    req = vendor.health_request(provider)
    timeout_ms = provider.health_check.timeout_ms
    started = time.perf_counter()
    error: str | None = None
    provider_fault = False
    pool = new_pool(provider, _ONE_SHOT)  # through its proxy, with its TLS settings
    try:
        headers = {**req.headers, **await req.auth()} if req.auth is not None else req.headers
        response = await pool.request(
            req.method, req.url, headers, req.body or b"", timeout_ms / 1000, whole=True
        )
        if response.status != 200:
            failure = vendor.error_from_upstream(response.status, response.body, response.headers)
            error = f"{failure.type} (HTTP {response.status})"
            provider_fault = failure.counts_against_provider
    except GatewayError as failure:  # no credentials (a token endpoint that failed)
        error = f"{failure.type}: {failure.message}"
        provider_fault = failure.counts_against_provider
    except UPSTREAM_FAULTS as exc:
        timed_out = isinstance(exc, TimeoutError)
        error = f"no answer within {timeout_ms} ms" if timed_out else transport_error(exc).message
        provider_fault = True
    finally:
        await pool.close()
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    health = Health(error is None, elapsed_ms, error, time.time())
    if health.healthy or provider_fault:
        state.breakers.get(provider.name, provider.breaker).record_health(health.healthy)
    return health


async def check_all(state: GatewayState) -> dict[str, Health]:
    """Check every provider of the current snapshot at once; the slowest bounds the wait."""
    return await _check(state, list(state.snapshot.providers.values()))


async def _check(state: GatewayState, providers: list[ProviderConfig]) -> dict[str, Health]:
    results = await asyncio.gather(*(check_provider(state, p) for p in providers))
    checked = {p.name: h for p, h in zip(providers, results, strict=True)}
    state.health.update(checked)
    return checked


async def run_periodic(state: GatewayState) -> None:
    """Background checks, each provider at its own ``interval_s`` (0: never); runs until
    cancelled, following config reloads."""
    last: dict[str, float] = {}
    while True:
        providers = state.snapshot.providers
        for gone in [name for name in state.health if name not in providers]:
            state.health.pop(gone, None)
        now = time.monotonic()
        due = [
            p
            for p in providers.values()
            if p.health_check.interval_s > 0
            and now - last.get(p.name, -math.inf) >= p.health_check.interval_s
        ]
        if due:
            last.update((p.name, now) for p in due)
            try:
                await _check(state, due)
            except Exception:  # a bug must not end background checking for good
                log.exception("background health check failed")
        await asyncio.sleep(_next_wake(state, last))


def _next_wake(state: GatewayState, last: dict[str, float]) -> float:
    now = time.monotonic()
    waits = [
        last.get(p.name, now) + p.health_check.interval_s - now
        for p in state.snapshot.providers.values()
        if p.health_check.interval_s > 0
    ]
    return max(min([_IDLE_POLL_S, *waits]), 0.0)
