"""The counters behind budgets and rate limits, and the per-process store that keeps them.

A counter is one (limit, window): ``spent`` (settled amount) and ``reserved`` (held by
requests in flight, each hold expiring on its own so a crashed request frees what it held).
Amounts are integers (nano-dollars, requests or tokens). Three kinds of admission:

* ``RESERVE`` (hard budget): admit if spent + reserved + amount <= limit, then hold amount;
* ``CHECK`` (soft budget, tokens per minute): admit while spent < limit, hold nothing;
* ``COUNT`` (requests per minute): admit if spent + amount <= limit, then add amount.

A request's counters are admitted all together or not at all. :class:`MemoryStore` does it
on the event loop (no await inside, so atomic); the Redis store does the same in Lua.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

RESERVE, CHECK, COUNT = 0, 1, 2
GRACE_S = 3600
"""A counter is kept this long past the later of its window's end and its last hold's
expiry, so a late settle still finds it (and /status can show the last window)."""


class Op(NamedTuple):
    """One counter a request is admitted against (a tuple: built per request, cheaply)."""

    key: str
    limit: int
    amount: int
    kind: int
    expires_at: float  # the window's end (epoch seconds)


class Admission(NamedTuple):
    ok: bool
    spent: list[int]  # per op, after admission (COUNT ops include this request)
    refused: Sequence[int] = ()  # indices of the ops that did not fit


new_tuple = tuple.__new__
"""``new_tuple(Op, (...))``: a named tuple without its generated ``__new__``'s Python frame
(ops and charges are built per request)."""


class Charge(NamedTuple):
    """Settle one counter: release the hold of ``held`` and add ``charge`` to spent."""

    key: str
    held: int
    charge: int
    expires_at: float


class Store(Protocol):
    async def admit(
        self, ops: list[Op], hold_id: str, hold_until: float, now: float
    ) -> Admission: ...

    async def settle(self, charges: list[Charge], hold_id: str, now: float) -> list[int]: ...

    async def read(self, keys: list[str], now: float) -> list[tuple[int, int]]: ...

    async def close(self) -> None: ...


class _Counter:
    __slots__ = ("expires_at", "holds", "next_expiry", "reserved", "spent")

    def __init__(self, expires_at: float) -> None:
        self.spent = 0
        self.reserved = 0
        self.holds: dict[str, tuple[int, float]] = {}
        self.next_expiry = float("inf")
        self.expires_at = expires_at

    def purge(self, now: float) -> None:
        """Drop holds past their expiry (their requests died without settling)."""
        if now < self.next_expiry:
            return
        for hold_id, (amount, until) in list(self.holds.items()):
            if until <= now:
                del self.holds[hold_id]
                self.reserved -= amount
        self.next_expiry = min((u for _, u in self.holds.values()), default=float("inf"))


class MemoryStore:
    """Counters in this process: one sidecar (one worker) enforces its own limits."""

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._next_sweep = 0.0

    def _counter(self, key: str, expires_at: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(expires_at + GRACE_S)
        return counter

    async def admit(self, ops: list[Op], hold_id: str, hold_until: float, now: float) -> Admission:
        return self.admit_now(ops, hold_id, hold_until, now)

    def admit_now(self, ops: list[Op], hold_id: str, hold_until: float, now: float) -> Admission:
        """Admit all of ``ops`` or none (no await: atomic on the event loop). Each op is
        applied as soon as it fits and the applied ones are undone if a later one does not
        (refusals are rare; undoing leaves at most a counter's purge and expiry times early
        and late, which only costs a no-op purge or a later sweep)."""
        if now >= self._next_sweep:
            self._sweep(now)
        table = self._counters
        spent = []
        for key, limit, amount, kind, expires_at in ops:
            try:
                counter = table[key]
            except KeyError:
                counter = table[key] = _Counter(expires_at + GRACE_S)
            if now >= counter.next_expiry:
                counter.purge(now)
            used = counter.spent
            if kind == RESERVE:
                if used + counter.reserved + amount > limit:
                    return self._refuse(ops, len(spent), hold_id, now)
                if amount:
                    counter.reserved += amount
                    counter.holds[hold_id] = (amount, hold_until)
                    if hold_until < counter.next_expiry:
                        counter.next_expiry = hold_until
                    if hold_until + GRACE_S > counter.expires_at:
                        counter.expires_at = hold_until + GRACE_S
            elif kind == COUNT:
                if used + amount > limit:
                    return self._refuse(ops, len(spent), hold_id, now)
                used = counter.spent = used + amount
            elif used >= limit:  # CHECK
                return self._refuse(ops, len(spent), hold_id, now)
            spent.append(used)
        return new_tuple(Admission, (True, spent, ()))

    def _refuse(self, ops: list[Op], applied: int, hold_id: str, now: float) -> Admission:
        """Undo the first ``applied`` ops, then report every op's state and which refuse."""
        table = self._counters
        for key, _, amount, kind, _ in ops[:applied]:
            counter = table[key]
            if kind == RESERVE and amount and counter.holds.pop(hold_id, None) is not None:
                counter.reserved -= amount
            elif kind == COUNT:
                counter.spent -= amount
        spent, refused = [], []
        for i, (key, limit, amount, kind, expires_at) in enumerate(ops):
            counter = table.get(key) or self._counter(key, expires_at)
            counter.purge(now)
            used = counter.spent
            spent.append(used)
            if kind == RESERVE:
                fits = used + counter.reserved + amount <= limit
            else:
                fits = used < limit if kind == CHECK else used + amount <= limit
            if not fits:
                refused.append(i)
        return Admission(False, spent, refused)

    async def settle(self, charges: list[Charge], hold_id: str, now: float) -> list[int]:
        return self.settle_now(charges, hold_id, now)

    def settle_now(self, charges: list[Charge], hold_id: str, now: float) -> list[int]:
        out, table = [], self._counters
        for key, held, charge, expires_at in charges:
            try:
                counter = table[key]
            except KeyError:
                counter = table[key] = _Counter(expires_at + GRACE_S)
            if held and counter.holds.pop(hold_id, None) is not None:
                counter.reserved -= held
            counter.spent += charge
            out.append(counter.spent)
        return out

    async def read(self, keys: list[str], now: float) -> list[tuple[int, int]]:
        out = []
        for key in keys:
            counter = self._counters.get(key)
            if counter is None:
                out.append((0, 0))
            else:
                counter.purge(now)
                out.append((counter.spent, counter.reserved))
        return out

    def _sweep(self, now: float) -> None:
        """Forget counters of windows long over (at most once a minute)."""
        self._next_sweep = now + 60
        for key in [k for k, c in self._counters.items() if c.expires_at <= now]:
            del self._counters[key]

    async def close(self) -> None:
        return None
