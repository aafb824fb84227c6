"""Which counters a request falls under, and their amounts: the per-request arithmetic.

Kept cheap (the memory backend's whole check is budgeted at 30 us): window bounds and key
names are reused until their window ends, and a model's per-token prices are turned into
integer nano-dollars once (exact when a per-1k price has at most 6 decimals, else Decimal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from proxy.config.limits import LimitsSettings
from proxy.engine.dialects import ANTHROPIC
from proxy.engine.limits.estimate import NANO, output_bound
from proxy.engine.limits.store import CHECK, COUNT, RESERVE, Op
from proxy.engine.limits.windows import window
from proxy.engine.route import Target
from proxy.pricing import Price

USD, REQUESTS, TOKENS = "usd", "requests", "tokens"


@dataclass(slots=True)
class Entry(Op):
    """One counter of one request (the store's :class:`Op`), with which limit it is, which
    targets it covers and their worst case."""

    name: str = ""
    unit: str = USD  # USD (nano-dollars), REQUESTS or TOKENS
    covered: frozenset[str] = frozenset()  # model names of the targets it applies to
    worst: dict[str, int] | None = None  # per covered model: its worst case (nano or tokens)
    mode: str = "hard"
    period: str = "minute"


_windows: dict[str, tuple[int, int]] = {}
_keys: dict[tuple[str, str, str], tuple[int, str]] = {}
_rates: dict[int, tuple[Price, int | Decimal, int | Decimal]] = {}


def _window(period: str, now: float) -> tuple[int, int]:
    bounds = _windows.get(period)
    if bounds is None or not bounds[0] <= now < bounds[1]:
        bounds = _windows[period] = window(period, now)
    return bounds


def key(kind: str, name: str, what: str, start: int) -> str:
    """``<kind>:<name>:<what>:<window start>``, the store key, built once per window."""
    cached = _keys.get((kind, name, what))
    if cached is None or cached[0] != start:
        cached = _keys[(kind, name, what)] = (start, f"{kind}:{name}:{what}:{start}")
    return cached[1]


def _per_token(price: Price) -> tuple[int | Decimal, int | Decimal]:
    """(highest input, output) price per token in nano-dollars."""
    cached = _rates.get(id(price))
    if cached is None or cached[0] is not price:
        top = max(
            price.input_per_1k,
            price.cache_write_per_1k or price.input_per_1k,
            price.cache_read_per_1k or price.input_per_1k,
        )
        rates = [p * (NANO // 1000) for p in (top, price.output_per_1k)]
        exact = [int(r) if r == r.to_integral_value() else r for r in rates]
        cached = _rates[id(price)] = (price, exact[0], exact[1])
    return cached[1], cached[2]


def worst_case(price: Price, input_tokens: int, output_tokens: int) -> int:
    """The most this many tokens can cost at ``price``, in nano-dollars (rounded up)."""
    per_input, per_output = _per_token(price)
    total = input_tokens * per_input + output_tokens * per_output
    if isinstance(total, int):
        return total
    return int(total.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit as it applies to one chain of targets: everything but the amounts."""

    prefix: str  # "b" budget, "r" rate limit
    name: str
    what: str  # the period (budgets) or the unit (rate limits): part of the key
    unit: str
    kind: int
    limit: int
    period: str
    mode: str
    covered: frozenset[str]
    prices: tuple[tuple[str, Price], ...]  # the covered targets' (model, price)
    window: list[tuple[int, int, str]] = field(default_factory=lambda: [(0, 0, "")], compare=False)
    """[(start, end, store key)] of the window last used, replaced whole when it ends."""

    def current(self, now: float) -> tuple[int, str]:
        """The current window's end and store key."""
        start, end, store_key = self.window[0]
        if not start <= now < end:
            start, end = _window(self.period, now)
            store_key = key(self.prefix, self.name, self.what, start)
            self.window[0] = (start, end, store_key)
        return end, store_key


_rules: dict[tuple[int, tuple[str, ...], frozenset[bytes]], tuple[LimitsSettings, list[Rule]]] = {}


def rules(settings: LimitsSettings, targets: list[Target], tokens: frozenset[bytes]) -> list[Rule]:
    """The limits covering this chain of targets, compiled once per config and chain."""
    names = tuple(t.model.name for t in targets)
    cache_key = (id(settings), names, tokens)
    cached = _rules.get(cache_key)
    if cached is not None and cached[0] is settings:
        return cached[1]
    out = []
    for b in settings.budgets:
        covered = [t for t in targets if b.scope.covers(t.model.name, t.provider.name, tokens)]
        if covered:
            kind = RESERVE if b.mode == "hard" else CHECK
            prices = tuple((t.model.name, t.model.price) for t in covered)
            out.append(
                Rule("b", b.name, b.period, USD, kind, b.nano, b.period, b.mode,
                     frozenset(n for n, _ in prices), prices)
            )  # fmt: skip
    primary = targets[0] if targets else None
    for r in settings.rate_limits:
        if primary and r.scope.covers(primary.model.name, primary.provider.name, tokens):
            one = frozenset({primary.model.name})
            if r.requests_per_minute:
                limit = r.requests_per_minute
                out.append(
                    Rule("r", r.name, REQUESTS, REQUESTS, COUNT, limit, "minute", "", one, ())
                )
            if r.tokens_per_minute:
                limit = r.tokens_per_minute
                out.append(Rule("r", r.name, TOKENS, TOKENS, CHECK, limit, "minute", "", one, ()))
    if len(_rules) > 1024:
        _rules.clear()
    _rules[cache_key] = (settings, out)
    return out


def entries(
    settings: LimitsSettings,
    body: dict[str, Any],
    targets: list[Target],
    tokens: frozenset[bytes],
    inputs: int,
    now: float,
) -> list[Entry]:
    """The counters a request falls under, given the targets it may still end on."""
    out = []
    outputs: dict[str, int] = {}
    for t in targets:
        outputs[t.model.name] = output_bound(body, t.model, t.vendor.wire == ANTHROPIC)
    primary = targets[0].model.name if targets else ""
    for rule in rules(settings, targets, tokens):
        end, store_key = rule.current(now)
        if rule.unit == USD:
            worst = {name: worst_case(price, inputs, outputs[name]) for name, price in rule.prices}
            amount = max(worst.values()) if rule.kind == RESERVE else 0
        elif rule.unit == REQUESTS:
            worst, amount = _ONE, 1
        else:
            worst, amount = {primary: inputs + outputs[primary]}, 0
        out.append(
            Entry(store_key, rule.limit, amount, rule.kind, end,
                  rule.name, rule.unit, rule.covered, worst, rule.mode, rule.period)
        )  # fmt: skip
    return out


_ONE: dict[str, int] = {}
"""A requests counter's worst case: never charged at settle (counted at admission)."""
