"""Active provider health checks: a cheap authenticated request to each provider, concurrently.

Results feed the circuit breaker: a dead provider counts as a failure, a healthy answer lets an
open breaker close early. With ``health_check.interval_s`` > 0 a background task keeps recent
results so ``/health/providers`` answers instantly.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

import aiohttp

from proxy.config.snapshot import ProviderConfig
from proxy.engine.state import GatewayState
from proxy.engine.upstream import transport_error
from proxy.providers.registry import vendor_for


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
    """One check, bounded by the provider's ``health_check.timeout_ms``."""
    vendor = vendor_for(provider.type)
    req = vendor.health_request(provider)
    started = time.perf_counter()
    error: str | None = None
    try:
        async with (
            state.pools.lease(provider) as session,
            asyncio.timeout(provider.health_check.timeout_ms / 1000),
            session.request(req.method, req.url, headers=dict(req.headers)) as response,
        ):
            body = await response.read()
            if response.status != 200:
                failure = vendor.error_from_upstream(response.status, body, response.headers)
                error = f"{failure.type} (HTTP {response.status})"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        error = transport_error(exc).message
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    health = Health(error is None, elapsed_ms, error, time.time())
    breaker = state.breakers.get(provider.name, provider.breaker)
    if health.healthy:
        if str(breaker.state) != "closed":
            breaker.record_success()
    elif error is not None and "invalid_api_key" not in error:
        breaker.record_failure()
    return health


async def check_all(state: GatewayState) -> dict[str, Health]:
    """Check every provider of the current snapshot at once; the slowest bounds the wait."""
    providers = list(state.snapshot.providers.values())
    results = await asyncio.gather(*(check_provider(state, p) for p in providers))
    checked = {p.name: h for p, h in zip(providers, results, strict=True)}
    state.health.update(checked)
    return checked


async def run_periodic(state: GatewayState) -> None:
    """Background checks at the shortest configured interval (none configured: returns)."""
    while True:
        intervals = [
            p.health_check.interval_s
            for p in state.snapshot.providers.values()
            if p.health_check.interval_s > 0
        ]
        if not intervals:
            return
        await check_all(state)
        await asyncio.sleep(min(intervals))
