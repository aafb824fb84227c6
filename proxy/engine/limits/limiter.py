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
from proxy.engine.limits.estimate import from_nano, input_bound
from proxy.engine.limits.plan import NO_WORST, USD, Plan, compile_plan
from proxy.engine.limits.redis_store import RedisStore
from proxy.engine.limits.store import Admission, MemoryStore, Op, Store
from proxy.engine.limits.ticket import Ticket
from proxy.engine.limits.windows import iso, retry_after
from proxy.engine.route import Target, chain, resolve
from proxy.errors import ErrorType, GatewayError
from proxy.pricing import format_usd

log = logging.getLogger("llm_edge_agent.limits")
HOLD_MARGIN_S = 10.0
"""A hold outlives its request's deadline by this much (time to settle), then expires."""
WARN_EVERY_S = 10.0
MAX_PLANS = 1024
_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()
_NO_TOKENS: frozenset[bytes] = frozenset()
_NONE: frozenset[str] = frozenset()


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
    _plans: dict[tuple[Any, frozenset[bytes]], Plan] = field(default_factory=dict)
    _plans_of: Snapshot | None = None
    """The snapshot ``_plans`` were compiled for (a reload starts a new cache)."""

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
        self, snapshot: Snapshot, body: dict[str, Any], raw: bytes, headers: Mapping[str, str]
    ) -> Ticket | None:
        """A :class:`~proxy.engine.limits.ticket.Ticket`, or None when no limit applies (or
        the store is unreachable and ``fail_open``); raises 429 ``budget_exceeded``."""
        settings = snapshot.limits
        now = self.clock()
        tokens = _token_digests(headers) if settings.token_scoped else _NO_TOKENS
        model = str(body.get("model"))
        plans = self._plans if snapshot is self._plans_of else self._reset(snapshot)
        plan = plans.get((model, tokens)) or self._plan(snapshot, model, tokens)
        if not plan.rules:
            return None
        inputs = input_bound(raw)
        hold_id = f"{_ID_PREFIX}{next(_ids)}"
        hold_until = now + plan.hold_s
        ops, worst = plan.ops(body, inputs, now)
        store = plan.store
        try:
            if store is self.memory:  # no await: the memory store never waits
                admission = self.memory.admit_now(ops, hold_id, hold_until, now)
            else:
                admission = await store.admit(ops, hold_id, hold_until, now)
        except (RedisError, OSError) as exc:
            self.unreachable(settings, exc)
            return None
        if admission.ok:
            return Ticket(self, plan, ops, admission.spent, worst, hold_id, _NONE)
        return await self._without_fallbacks(
            snapshot, plan, body, inputs, tokens, (hold_id, hold_until, now), (ops, admission)
        )

    async def _without_fallbacks(
        self,
        snapshot: Snapshot,
        plan: Plan,
        body: dict[str, Any],
        inputs: int,
        tokens: frozenset[bytes],
        hold: tuple[str, float, float],
        first: tuple[list[Op], Admission],
    ) -> Ticket | None:
        """Refused: raise 429 when a refusing limit covers the requested model, else admit
        the chain again without the fallbacks that cannot fit (the rare path)."""
        hold_id, hold_until, now = hold
        targets, (ops, admission) = plan.targets, first
        settings = snapshot.limits
        excluded: set[str] = set()
        while True:
            self.seen(plan, admission.spent)
            refused = [plan.rules[i] for i in admission.refused]
            if any(plan.primary in rule.covered for rule in refused):
                raise self._refusal(plan, ops, admission, now)
            for rule in refused:
                excluded |= rule.covered  # fallbacks that cannot fit: the chain goes without
            live = [t for t in targets if t.model.name not in excluded]
            plan = self._chain_plan(snapshot, live, tokens)
            if not plan.rules:  # nothing applies any more: only the exclusions remain
                return Ticket(self, plan, [], [], NO_WORST, hold_id,
                              frozenset(excluded))  # fmt: skip
            ops, worst = plan.ops(body, inputs, now)
            try:
                admission = await self.store(settings).admit(ops, hold_id, hold_until, now)
            except (RedisError, OSError) as exc:
                self.unreachable(settings, exc)
                return None
            if admission.ok:
                return Ticket(self, plan, ops, admission.spent, worst, hold_id,
                              frozenset(excluded))  # fmt: skip

    def _plan(self, snapshot: Snapshot, model: str, tokens: frozenset[bytes]) -> Plan:
        """Compile the plan of a request for ``model`` (its chain of targets), once."""
        targets = chain(snapshot, resolve(snapshot, model))
        plan = self._chain_plan(snapshot, targets, tokens)
        self._remember((model, tokens), plan)
        return plan

    def _chain_plan(
        self, snapshot: Snapshot, targets: list[Target], tokens: frozenset[bytes]
    ) -> Plan:
        """The compiled plan of a chain of targets, cached per snapshot."""
        if snapshot is not self._plans_of:  # a reload came while this request awaited Redis
            self._reset(snapshot)
        cache_key = (tuple(t.model.name for t in targets), tokens)
        plan = self._plans.get(cache_key)
        if plan is None:
            hold_s = targets[0].model.timeouts.request_ms / 1000 + HOLD_MARGIN_S
            plan = compile_plan(snapshot.limits, targets, tokens, hold_s)
            plan.store = self.store(snapshot.limits)
            self._remember(cache_key, plan)
        return plan

    def _reset(self, snapshot: Snapshot | None) -> dict[tuple[Any, frozenset[bytes]], Plan]:
        """Plans belong to one snapshot: a reload starts over (spend is in the store)."""
        self._plans_of, self._plans = snapshot, {}
        return self._plans

    def _remember(self, cache_key: tuple[Any, frozenset[bytes]], plan: Plan) -> None:
        if len(self._plans) >= MAX_PLANS:  # many inbound tokens: start over
            self._plans.clear()
        self._plans[cache_key] = plan

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

    def seen(self, plan: Plan, spent: list[int]) -> None:
        """Remember the budgets' values for metrics (spend and remaining per budget; a rate
        limit's view only counts its rejections, so it only has to exist)."""
        views = plan.views
        if views is None:
            views = plan.views = []
            for i, rule in enumerate(plan.rules):
                view = self.views.get((rule.name, rule.unit))
                if view is None:
                    view = self.views[(rule.name, rule.unit)] = View(rule.unit, rule.limit)
                if rule.unit == USD:
                    views.append((i, view, rule.limit))
        for i, view, limit in views:
            view.limit, view.spent = limit, spent[i]

    def _refusal(self, plan: Plan, ops: list[Op], admission: Admission, now: float) -> GatewayError:
        refused = admission.refused
        for i in refused:
            self.views[(plan.rules[i].name, plan.rules[i].unit)].rejections += 1
        i = max(refused, key=lambda j: ops[j].expires_at)
        rule, op, used = plan.rules[i], ops[i], admission.spent[i]
        resets = iso(op.expires_at)
        if rule.unit == USD:
            left = format_usd(from_nano(max(op.limit - used, 0)))
            usd = format_usd(from_nano(op.limit))
            message = (
                f"Budget '{rule.name}' (${usd} per {rule.period}) cannot cover this request "
                f"(${left} left); it resets at {resets}."
            )
        else:
            message = (
                f"Rate limit '{rule.name}' allows {op.limit} {rule.unit} per minute; "
                f"it resets at {resets}."
            )
        return GatewayError(
            ErrorType.BUDGET_EXCEEDED,
            message,
            code="budget_exceeded",
            retry_after=str(retry_after(op.expires_at, now)),
        )

    async def close(self) -> None:
        self._reset(None)
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
    ticket = await limits.admit(snapshot, call.body, call.raw, headers)
    if ticket is not None:
        call.ticket, call.excluded = ticket, ticket.excluded


def _token_digests(headers: Mapping[str, str]) -> frozenset[bytes]:
    from proxy.server.auth import presented

    return frozenset(hashlib.sha256(value).digest() for value in presented(headers))
