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
from proxy.engine.limits.store import RESERVE, Charge
from proxy.pricing import Usage

if TYPE_CHECKING:
    from proxy.engine.limits.limiter import Limits
    from proxy.engine.limits.plan import Entry

REMAINING_USD = "x-llm-budget-remaining-usd"
REMAINING_REQUESTS = "x-ratelimit-remaining-requests"
REMAINING_TOKENS = "x-ratelimit-remaining-tokens"
_HEADER = {"usd": REMAINING_USD, "requests": REMAINING_REQUESTS, "tokens": REMAINING_TOKENS}


class Ticket:
    """Returned by :meth:`Limits.admit`; ``excluded`` names fallbacks the budgets ruled out."""

    __slots__ = ("_entries", "_hold_id", "_limits", "_settings", "_spent", "excluded", "settled")

    def __init__(
        self,
        limits: Limits,
        settings: LimitsSettings,
        entries: list[Entry],
        spent: list[int],
        hold_id: str,
        excluded: frozenset[str],
    ) -> None:
        self._limits, self._settings = limits, settings
        self._entries, self._spent, self._hold_id = entries, spent, hold_id
        self.excluded = excluded
        self.settled = False

    def headers(self, model: str) -> dict[str, str]:
        """The remaining-amount headers for a request answered by ``model``, as last known
        (after the charge once settled, else at admission)."""
        lowest: dict[str, int] = {}
        for entry, spent in zip(self._entries, self._spent, strict=True):
            if model in entry.covered:
                left = entry.limit - spent if spent < entry.limit else 0
                best = lowest.get(entry.unit)
                if best is None or left < best:
                    lowest[entry.unit] = left
        out = {}
        for unit, left in lowest.items():
            out[_HEADER[unit]] = usd_text(left) if unit == "usd" else str(left)
        return out

    async def settle(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Charge the answer of ``model`` (None: the request failed, release everything)."""
        if not self.settled:
            self.settled = True
            await self._apply(model, usage, cost)

    def settle_later(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        """Settle without making anyone wait (a stream's end, an error, a cancelled request)."""
        if not self.settled:
            self.settled = True
            self._limits.later(self._apply(model, usage, cost))

    async def _apply(self, model: str | None, usage: Usage | None, cost: Decimal | None) -> None:
        charges, owners = [], []
        known = {  # what the answer cost, per unit; None = unknown: charge the worst case
            "usd": to_nano(cost) if cost is not None and usage is not None else None,
            "tokens": usage.total_tokens if usage is not None else None,
            "requests": 0,  # counted at admission
        }
        for i, entry in enumerate(self._entries):
            op = entry
            held = op.amount if op.kind == RESERVE else 0
            charge = 0
            if model is not None and model in entry.covered:
                exact = known[entry.unit]
                charge = exact if exact is not None else entry.worst[model]
            if held or charge:
                charges.append(Charge(entry.key, held, charge, entry.expires_at))
                owners.append(i)
        if not charges:
            return
        limits = self._limits
        try:
            spent = await limits.store(self._settings).settle(
                charges, self._hold_id, limits.clock()
            )
        except (RedisError, OSError) as exc:
            limits.unreachable(_open(self._settings), exc)  # holds expire by themselves
            return
        for i, value in zip(owners, spent, strict=True):
            self._spent[i] = value
        limits._seen(self._entries, self._spent)


def _open(settings: LimitsSettings) -> LimitsSettings:
    """A settle that fails cannot refuse anything any more: report it as failing open."""
    return settings if settings.fail_open else _FAIL_OPEN


_FAIL_OPEN = LimitsSettings(fail_open=True)
