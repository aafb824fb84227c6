"""Admission against budgets and rate limits: one store call before a request goes upstream.

:class:`Limits` lives as long as the gateway (one per worker), across config reloads: its
counters are keyed by limit *name* and window, so a reload that keeps a budget's name keeps
its spend, whatever else changed. A request is admitted against every counter it falls under
at once, or refused with 429 ``budget_exceeded`` and never sent upstream.

Fallbacks: a budget is checked for every target the request may end on (its model, then its
fallbacks), reserving the worst case of the targets it covers, because spend is charged to
the model that answered. A budget that refuses only fallback targets takes them out of the
request's chain; one that covers the requested model refuses the request. Rate limits apply
to the requested model and its provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from proxy.config.limits import LimitsSettings
from proxy.config.snapshot import Snapshot
from proxy.engine.limits import plan
from proxy.engine.limits.estimate import from_nano, input_bound
from proxy.engine.limits.plan import USD, Entry
from proxy.engine.limits.redis_store import RedisStore
from proxy.engine.limits.store import MemoryStore, Store
from proxy.engine.limits.ticket import Ticket
from proxy.engine.limits.windows import iso, retry_after
from proxy.engine.route import Target, chain, resolve
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import format_usd

log = logging.getLogger("llm_edge_agent.limits")
HOLD_MARGIN_S = 10.0
"""A hold outlives its request's deadline by this much (time to settle), then expires."""
WARN_EVERY_S = 10.0
_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()


@dataclass
class View:
    """A counter as this gateway last saw it (for metrics; /status reads the store)."""

    unit: str
    limit: int
    spent: int = 0
    rejections: int = 0


@dataclass
class Limits:
    """The gateway's limits state; ``clock`` is injectable so tests move time, not sleep."""

    clock: Callable[[], float] = time.time
    memory: MemoryStore = field(default_factory=MemoryStore)
    views: dict[tuple[str, str], View] = field(default_factory=dict)
    unenforced: int = 0
    _redis: dict[tuple[str, int, str], RedisStore] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _warned_at: float = -WARN_EVERY_S

    def store(self, settings: LimitsSettings) -> Store:
        if settings.backend != "redis":
            return self.memory
        key = (settings.redis_url, settings.redis_timeout_ms, settings.key_prefix)
        store = self._redis.get(key)
        if store is None:
            timeout = settings.redis_timeout_ms / 1000
            store = self._redis[key] = RedisStore(settings.redis_url, timeout, settings.key_prefix)
        return store

    async def admit(
        self,
        snapshot: Snapshot,
        body: dict[str, Any],
        raw: bytes,
        headers: Mapping[str, str],
        targets: list[Target],
    ) -> Any:
        """A :class:`~proxy.engine.limits.ticket.Ticket`, or None when no limit applies (or
        the store is unreachable and ``fail_open``); raises 429 ``budget_exceeded``."""
        settings = snapshot.limits
        now = self.clock()
        tokens = _token_digests(headers) if settings.token_scoped else frozenset()
        inputs = input_bound(raw)
        hold_until = now + targets[0].model.timeouts.request_ms / 1000 + HOLD_MARGIN_S
        hold_id = f"{_ID_PREFIX}{next(_ids)}"
        excluded: set[str] = set()
        while True:
            live = [t for t in targets if t.model.name not in excluded]
            entries = plan.entries(settings, body, live, tokens, inputs, now)
            if not entries:  # nothing applies (any more): only the exclusions remain
                return (
                    Ticket(self, settings, [], [], hold_id, frozenset(excluded))
                    if excluded
                    else None
                )
            try:
                admission = await self.store(settings).admit(entries, hold_id, hold_until, now)
            except (RedisError, OSError) as exc:
                self.unreachable(settings, exc)
                return None
            if admission.ok:
                return Ticket(
                    self, settings, entries, admission.spent, hold_id, frozenset(excluded)
                )
            self._seen(entries, admission.spent)
            refused = [entries[i] for i in admission.refused]
            primary = targets[0].model.name
            if any(primary in e.covered for e in refused):
                raise self._refusal(refused, admission.spent, entries, now)
            for entry in refused:
                excluded |= entry.covered  # fallbacks that cannot fit: the chain goes without

    def unreachable(self, settings: LimitsSettings, exc: BaseException) -> None:
        """Redis is down: count it, warn (at most every WARN_EVERY_S), fail open or closed."""
        self.unenforced += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            how = "requests pass unenforced" if settings.fail_open else "requests are refused"
            log.warning("limits store unreachable (%s): %s", type(exc).__name__, how)
        if not settings.fail_open:
            raise GatewayError(
                ErrorType.UNAVAILABLE,
                "The gateway's budget store is unreachable and limits fail closed.",
                code="limits_unavailable",
                retry_after="1",
            ) from None

    def later(self, work: Any) -> None:
        """Run a settle in the background (the response no longer waits for it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _seen(self, entries: list[Entry], spent: list[int]) -> None:
        views = self.views
        for entry, value in zip(entries, spent, strict=True):
            view = views.get((entry.name, entry.unit))
            if view is None:
                view = views[(entry.name, entry.unit)] = View(entry.unit, entry.limit)
            view.limit, view.spent = entry.limit, value

    def _refusal(
        self, refused: list[Entry], spent: list[int], entries: list[Entry], now: float
    ) -> GatewayError:
        for entry in refused:
            self.views[(entry.name, entry.unit)].rejections += 1
        entry = max(refused, key=lambda e: e.expires_at)
        used = spent[entries.index(entry)]
        resets = iso(entry.expires_at)
        if entry.unit == USD:
            left = format_usd(from_nano(max(entry.limit - used, 0)))
            usd = format_usd(from_nano(entry.limit))
            message = (
                f"Budget '{entry.name}' (${usd} per {entry.period}) cannot cover this request "
                f"(${left} left); it resets at {resets}."
            )
        else:
            message = (
                f"Rate limit '{entry.name}' allows {entry.limit} {entry.unit} per minute; "
                f"it resets at {resets}."
            )
        return GatewayError(
            ErrorType.BUDGET_EXCEEDED,
            message,
            code="budget_exceeded",
            retry_after=str(retry_after(entry.expires_at, now)),
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.wait({task}, timeout=1)
        for store in self._redis.values():
            await store.close()
        self._redis.clear()


async def admit_call(limits: Limits, call: Any, headers: Mapping[str, str]) -> None:
    """Admit ``call`` (a :class:`proxy.engine.attempts.Call`) before any upstream attempt:
    sets ``call.ticket`` and ``call.excluded``, or raises 429 ``budget_exceeded``. Nothing to
    do (and nearly nothing spent) when the snapshot has no limits."""
    snapshot = call.snapshot
    if not snapshot.limits.enabled:
        return
    targets = chain(snapshot, resolve(snapshot, str(call.body.get("model"))))
    ticket = await limits.admit(snapshot, call.body, call.raw, headers, targets)
    if ticket is not None:
        call.ticket, call.excluded = ticket, ticket.excluded


def _token_digests(headers: Mapping[str, str]) -> frozenset[bytes]:
    from proxy.server.auth import presented

    return frozenset(hashlib.sha256(value).digest() for value in presented(headers))
