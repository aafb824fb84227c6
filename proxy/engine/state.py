"""The gateway's long-lived state: the current snapshot, upstream pools, breakers, observers.

The snapshot is swapped by assigning one attribute (atomic under the event loop); a request
reads ``state.snapshot`` once at its start and keeps that object to its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from proxy.config.snapshot import Snapshot
from proxy.engine.breaker import Breakers
from proxy.engine.cache.store import ResponseCache
from proxy.engine.limits import Limits
from proxy.engine.pool import Pools
from proxy.pricing import Usage


@dataclass(slots=True)
class RequestRecord:
    """What one finished request did; metrics and the access log are built from it."""

    request_id: str
    dialect: str
    model_requested: str
    stream: bool
    status: int = 0
    model: str | None = None
    upstream_model: str | None = None
    provider: str | None = None
    error_type: str | None = None
    attempts: int = 0
    # (model, provider, outcome) per upstream attempt, as tried (fallbacks included).
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    usage: Usage | None = None  # None: no answer, or an answer that reported no usage
    cost: Decimal | None = None  # None: unknown (never a made-up zero)
    usage_missing: bool = False  # the upstream answered but reported no usage
    latency_s: float = 0.0
    upstream_s: float = 0.0
    overhead_s: float = 0.0
    first_token_s: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    client_disconnected: bool = False
    dropped_params: tuple[str, ...] = ()
    started_at: float = field(default_factory=time.time)
    # Set only when server.logging.log_content is on: the raw request and response bodies.
    request_body: bytes | None = None
    response_body: bytes | None = None
    cache: str | None = None  # hit | miss | bypass; None when the cache does not apply
    cost_saved: Decimal | None = None  # a hit: what the stored answer cost originally


Observer = Callable[[RequestRecord], None]


@dataclass
class ReloadStatus:
    ok: bool = True
    at: float = 0.0
    error: str | None = None
    source: str = "startup"


class GatewayState:
    """Owned by the server app; one per worker process."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.pools = Pools()
        self.breakers = Breakers()
        self.observers: list[Observer] = []
        self.last_reload = ReloadStatus(ok=True, at=snapshot.loaded_at)
        self.draining = False
        self.reload_counts = {"ok": 0, "error": 0}
        self.health: dict[str, Any] = {}  # provider name -> latest proxy.engine.health.Health
        self.idle = asyncio.Event()  # set while no completion request is running
        self.in_flight = 0
        self.open_streams: set[Any] = set()  # proxy.engine.upstream.OpenStream being relayed
        self.cache = ResponseCache()
        self.limits = Limits()  # budgets and rate limits: spend outlives snapshots (by name)

    @property
    def in_flight(self) -> int:
        """Completion requests running now, streams included."""
        return self._in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        # An event, not polling: the drain ends the moment the last request does.
        self._in_flight = value
        if value:
            self.idle.clear()
        else:
            self.idle.set()

    @property
    def streams_open(self) -> int:
        return len(self.open_streams)

    def start(self) -> None:
        """Create the upstream pools."""
        self.pools.sync(self.snapshot)
        self.breakers.sync(self.snapshot.providers)
        self.cache.sync(self.snapshot)

    def swap(self, snapshot: Snapshot, source: str = "reload") -> None:
        """Make ``snapshot`` current; running requests keep the one they started with."""
        self.pools.sync(snapshot)
        self.breakers.sync(snapshot.providers)
        self.cache.sync(snapshot)
        self.snapshot = snapshot
        self.last_reload = ReloadStatus(ok=True, at=time.time(), source=source)
        self.reload_counts["ok"] += 1

    def reload_failed(self, error: str, source: str = "reload") -> None:
        """The old snapshot keeps serving; the error is kept for /status and metrics."""
        self.last_reload = ReloadStatus(ok=False, at=time.time(), error=error, source=source)
        self.reload_counts["error"] += 1

    def observe(self, record: RequestRecord) -> None:
        for observer in self.observers:
            observer(record)

    async def close(self) -> None:
        await self.limits.close()
        await self.pools.close()
        await self.cache.close()
