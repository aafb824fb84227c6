"""An admitted request's side of the limits: its holds, its settle, its response headers.

Settle exactly once: after the answer, each budget covering the model that answered is
charged the exact cost (in nano-dollars) and every hold is released; a budget that does not
cover it (a fallback answered) is only released. When the upstream reported no usage (a
stream cut early, or an answer without ``usage``), the charge is the worst case that was
reserved for that model, never nothing. A failed request releases everything.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from proxy.config.limits import LimitsSettings
from proxy.engine.limits.estimate import to_nano, usd_text
from proxy.engine.limits.plan import CHARGE_TOKENS, CHARGE_USD, Plan, Worst
from proxy.engine.limits.store import RESERVE, Charge, Op
from proxy.pricing import Usage

if TYPE_CHECKING:
    from proxy.engine.limits.limiter import Limits

_new_charge = tuple.__new__  # a Charge without the generated __new__'s Python frame


class Ticket:
    """Returned by :meth:`Limits.admit`; ``excluded`` names fallbacks the budgets ruled out."""

    __slots__ = (
        "_hold_id", "_limits", "_ops", "_plan", "_settings", "_spent", "_worst", "excluded",
        "settled",
    )  # fmt: skip

    def __init__(
        self,
        limits: Limits,
        settings: LimitsSettings,
        plan: Plan,
        ops: list[Op],
        spent: list[int],
        worst: Worst,
        hold_id: str,
        excluded: frozenset[str],
    ) -> None:
        self._limits, self._settings, self._plan = limits, settings, plan
        self._ops, self._spent, self._worst, self._hold_id = ops, spent, worst, hold_id
        self.excluded = excluded
        self.settled = False

    def headers(self, model: str) -> dict[str, str]:
        """The remaining-amount headers for a request answered by ``model``, as last known
        (after the charge once settled, else at admission): the lowest per unit."""
        out = {}
        ops, spent = self._ops, self._spent
        for header, usd, indices in self._plan.header_groups.get(model, ()):
            lowest = None
            for i in indices:
                limit, used = ops[i].limit, spent[i]
                left = limit - used if used < limit else 0
                if lowest is None or left < lowest:
                    lowest = left
            out[header] = usd_text(lowest) if usd else str(lowest)
        return out

    async def settle(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Charge the answer of ``model`` (None: the request failed, release everything)."""
        if not self.settled:
            self.settled = True
            charges, owners = self._charges(model, usage, cost)
            if charges:
                limits = self._limits
                if limits.store(self._settings) is limits.memory:  # never waits: no await
                    spent = limits.memory.settle_now(charges, self._hold_id, limits.clock())
                    self._record(owners, spent)
                else:
                    await self._remote(charges, owners)

    def settle_later(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Settle without making anyone wait (a stream's end, an error, a cancelled request):
        at once in memory, in a background task with Redis."""
        if not self.settled:
            self.settled = True
            charges, owners = self._charges(model, usage, cost)
            if charges:
                limits = self._limits
                if limits.store(self._settings) is limits.memory:
                    spent = limits.memory.settle_now(charges, self._hold_id, limits.clock())
                    self._record(owners, spent)
                else:
                    limits.later(self._remote(charges, owners))

    async def _remote(self, charges: list[Charge], owners: list[int]) -> None:
        limits = self._limits
        try:
            spent = await limits.store(self._settings).settle(
                charges, self._hold_id, limits.clock()
            )
        except (RedisError, OSError) as exc:
            limits.unreachable(_open(self._settings), exc)  # holds expire by themselves
            return
        self._record(owners, spent)

    def _record(self, owners: list[int], spent: list[int]) -> None:
        mine = self._spent
        for i, value in zip(owners, spent, strict=True):
            mine[i] = value
        self._limits.seen(self._plan, mine)

    def _charges(
        self, model: str | None, usage: Usage | None, cost: Decimal | None
    ) -> tuple[list[Charge], list[int]]:
        """Per counter: release its hold, charge what the answer cost (the worst case that
        was reserved for ``model`` when the upstream reported no usage)."""
        usd = None
        ops, charges, owners = self._ops, [], []
        for i, what in self._plan.settles.get(model, ()):
            op = ops[i]
            held = op.amount if op.kind == RESERVE else 0
            if what == CHARGE_USD:
                if usd is None:
                    known = cost is not None and usage is not None
                    usd = to_nano(cost) if known else self._worst[0][model]
                charge = usd
            elif what == CHARGE_TOKENS:
                charge = usage.total_tokens if usage is not None else self._worst[1]
            else:
                charge = 0
            if held or charge:
                charges.append(_new_charge(Charge, (op.key, held, charge, op.expires_at)))
                owners.append(i)
        return charges, owners


def _open(settings: LimitsSettings) -> LimitsSettings:
    """A settle that fails cannot refuse anything any more: report it as failing open."""
    return settings if settings.fail_open else _FAIL_OPEN


_FAIL_OPEN = LimitsSettings(fail_open=True)
