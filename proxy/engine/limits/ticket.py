"""An admitted request's side of the limits: its holds, its settle, its response headers.

Settle exactly once: after the answer, each budget covering the model that answered is
charged the exact cost (in nano-dollars) and every hold is released; a budget that does not
cover it (a fallback answered) is only released. When the upstream reported no usage (a
stream cut early, or an answer without ``usage``), the charge is the worst case that was
reserved for that model, never nothing. A failed request releases everything.
"""

from __future__ import annotations

from collections.abc import Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from proxy.config.limits import LimitsSettings
from proxy.engine.limits.estimate import to_nano, usd_text
from proxy.engine.limits.plan import Plan, Worst
from proxy.engine.limits.store import Charge, Op, Store, new_tuple
from proxy.pricing import Usage

if TYPE_CHECKING:
    from proxy.engine.limits.limiter import Limits


class Ticket:
    """Returned by :meth:`Limits.admit`; ``excluded`` names fallbacks the budgets ruled out."""

    __slots__ = ("_hold_id", "_limits", "_ops", "_plan", "_spent", "_worst", "excluded", "settled")

    def __init__(
        self,
        limits: Limits,
        plan: Plan,
        ops: list[Op],
        spent: list[int],
        worst: Worst,
        hold_id: str,
        excluded: frozenset[str],
    ) -> None:
        self._limits, self._plan, self._ops, self._spent = limits, plan, ops, spent
        self._worst, self._hold_id = worst, hold_id
        self.excluded = excluded
        self.settled = False

    def headers(self, model: str) -> dict[str, str]:
        """The remaining-amount headers for a request answered by ``model``, as last known
        (after the charge once settled, else at admission): the lowest per unit."""
        out = {}
        spent = self._spent
        for header, usd, i, limit, others in self._plan.header_groups.get(model, ()):
            left = limit - spent[i]
            for j, other in others:
                if other - spent[j] < left:
                    left = other - spent[j]
            if left < 0:
                left = 0
            out[header] = usd_text(left) if usd else str(left)
        return out

    async def settle(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Charge the answer of ``model`` (None: the request failed, release everything)."""
        if not self.settled:
            self.settled = True
            remote = self._apply(model, usage, cost)
            if remote is not None:
                await remote

    def settle_later(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Settle without making anyone wait (a stream's end, an error, a cancelled request):
        at once in memory, in a background task with Redis."""
        if not self.settled:
            self.settled = True
            remote = self._apply(model, usage, cost)
            if remote is not None:
                self._limits.later(remote)

    def _apply(
        self, model: str | None, usage: Usage | None, cost: Decimal | None
    ) -> Coroutine[Any, Any, None] | None:
        """Settle in memory now (it never waits); with Redis, the coroutine that settles."""
        settles = self._plan.settles  # a model no limit covers: only release (as for None)
        spec, owners, charges_usd, charges_tokens = settles.get(model) or settles[None]
        if not spec:
            return None
        usd = tokens = 0
        if charges_usd:  # the exact cost, or the worst case reserved when nobody knows it
            known = cost is not None and usage is not None
            usd = to_nano(cost) if known else self._worst[0][model]
        if charges_tokens:
            tokens = usage.total_tokens if usage is not None else self._worst[1]
        amounts = (0, usd, tokens)  # by HOLD, CHARGE_USD, CHARGE_TOKENS
        ops, charges = self._ops, []
        for i, holds, what in spec:
            key, _, amount, _, expires_at = ops[i]
            charges.append(
                new_tuple(Charge, (key, amount if holds else 0, amounts[what], expires_at))
            )
        limits, store = self._limits, self._plan.store
        if store is not limits.memory:
            return self._remote(store, charges, owners)
        self._record(owners, limits.memory.settle_now(charges, self._hold_id, limits.clock()))
        return None

    async def _remote(self, store: Store, charges: list[Charge], owners: tuple[int, ...]) -> None:
        limits = self._limits
        try:
            spent = await store.settle(charges, self._hold_id, limits.clock())
        except (RedisError, OSError) as exc:
            limits.unreachable(_open(self._plan.settings), exc)  # holds expire by themselves
            return
        self._record(owners, spent)

    def _record(self, owners: tuple[int, ...], spent: list[int]) -> None:
        """Keep the counters' new values (for the headers) and report them (metrics)."""
        mine = self._spent
        for k, i in enumerate(owners):  # (a zip with strict=True costs more than the loop)
            mine[i] = spent[k]
        self._limits.seen(self._plan, mine)


def _open(settings: LimitsSettings) -> LimitsSettings:
    """A settle that fails cannot refuse anything any more: report it as failing open."""
    return settings if settings.fail_open else _FAIL_OPEN


_FAIL_OPEN = LimitsSettings(fail_open=True)
