"""Which counters a request falls under, and their amounts: the per-request arithmetic.

Kept cheap (the memory backend's whole check is budgeted at 30 us): everything that depends
only on the config and the chain of targets is compiled once into a :class:`Plan` (cached
per snapshot by :class:`~proxy.engine.limits.limiter.Limits`), each rule keeps its current
window's bounds, store key and (for amounts that do not depend on the request) its whole
store op until the window ends, and a model's per-token prices are turned into integer
nano-dollars once (exact when a per-1k price has at most 6 decimals, else Decimal). What is
left per request is the request's worst case and one op per hard budget.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from proxy.config.limits import LimitsSettings
from proxy.engine.dialects import ANTHROPIC
from proxy.engine.limits.estimate import NANO, asked_output, default_output
from proxy.engine.limits.store import CHECK, COUNT, RESERVE, Op
from proxy.engine.limits.windows import window
from proxy.engine.route import Target
from proxy.pricing import Price

if TYPE_CHECKING:
    from proxy.engine.limits.limiter import View

USD, REQUESTS, TOKENS = "usd", "requests", "tokens"
HEADERS = {
    USD: "x-llm-budget-remaining-usd",
    REQUESTS: "x-ratelimit-remaining-requests",
    TOKENS: "x-ratelimit-remaining-tokens",
}
_new_op = tuple.__new__  # an Op without the generated __new__'s Python frame


def key(kind: str, name: str, what: str, start: int) -> str:
    """``<kind>:<name>:<what>:<window start>``, the store key of one counter in one window."""
    return f"{kind}:{name}:{what}:{start}"


def per_token(price: Price) -> tuple[int | Decimal, int | Decimal]:
    """(highest input, output) price per token in nano-dollars, ints when exact."""
    top = max(
        price.input_per_1k,
        price.cache_write_per_1k or price.input_per_1k,
        price.cache_read_per_1k or price.input_per_1k,
    )
    rates = [p * (NANO // 1000) for p in (top, price.output_per_1k)]
    exact = [int(r) if r == r.to_integral_value() else r for r in rates]
    return exact[0], exact[1]


def _nano(total: int | Decimal) -> int:
    if isinstance(total, int):
        return total
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def worst_case(price: Price, input_tokens: int, output_tokens: int) -> int:
    """The most this many tokens can cost at ``price``, in nano-dollars (rounded up)."""
    per_input, per_output = per_token(price)
    return _nano(input_tokens * per_input + output_tokens * per_output)


class Rule:
    """One limit as it applies to one chain of targets: everything but the amounts, and
    its current window (bounds, store key, and the op itself when the amount is fixed)."""

    __slots__ = (
        "covered", "end", "fixed", "kind", "limit", "models", "name", "period", "prefix",
        "start", "store_key", "unit", "what",
    )  # fmt: skip

    def __init__(
        self, prefix: str, name: str, what: str, unit: str, kind: int, limit: int,
        period: str, models: tuple[str, ...],
    ) -> None:  # fmt: skip
        self.prefix, self.name, self.what, self.unit = prefix, name, what, unit
        self.kind, self.limit, self.period = kind, limit, period
        self.models = models  # the covered targets' model names, in chain order
        self.covered = frozenset(models)
        self.start, self.end, self.store_key = 0, 0, ""
        self.fixed: Op | None = None

    def roll(self, now: float) -> None:
        """Move to the window holding ``now`` (once per window, or when the clock jumps)."""
        self.start, self.end = window(self.period, now)
        self.store_key = key(self.prefix, self.name, self.what, self.start)
        if self.kind != RESERVE:  # a count of 1 or a check: the same op all window long
            amount = 1 if self.kind == COUNT else 0
            self.fixed = _new_op(Op, (self.store_key, self.limit, amount, self.kind, self.end))


class Plan:
    """The compiled limits of one chain of targets under one config."""

    __slots__ = (
        "costs", "header_groups", "hold_s", "needs_outputs", "primary", "rules", "settles",
        "targets", "views",
    )  # fmt: skip

    def __init__(self, targets: list[Target], rules: list[Rule], hold_s: float) -> None:
        self.targets = targets
        self.rules = rules
        self.hold_s = hold_s
        self.primary = targets[0].model.name if targets else ""
        self.costs = tuple(  # per target a budget covers: what bounds its cost
            (t.model.name, t.model, t.vendor.wire == ANTHROPIC, *per_token(t.model.price))
            for t in targets
            if any(r.unit == USD and t.model.name in r.covered for r in rules)
        )
        self.needs_outputs = bool(self.costs) or any(r.unit == TOKENS for r in rules)
        names = [t.model.name for t in targets]
        self.settles = {n: _settles(rules, n) for n in (*names, None)}
        self.header_groups = {n: _header_groups(rules, n) for n in names}
        self.views: list[tuple[int, View, int]] | None = None
        """(rule index, view, limit) of the budgets, once Limits first reports them."""

    def ops(self, body: dict[str, Any], inputs: int, now: float) -> tuple[list[Op], Worst]:
        """This request's store ops (one per rule, in order) and its worst case."""
        worst = self.worst(body, inputs) if self.needs_outputs else NO_WORST
        ops = []
        for rule in self.rules:
            if not rule.start <= now < rule.end:
                rule.roll(now)
            fixed = rule.fixed
            if fixed is not None:
                ops.append(fixed)
                continue
            models, usd = rule.models, worst[0]
            amount = usd[models[0]] if len(models) == 1 else max(usd[m] for m in models)
            ops.append(_new_op(Op, (rule.store_key, rule.limit, amount, RESERVE, rule.end)))
        return ops, worst

    def worst(self, body: dict[str, Any], inputs: int) -> Worst:
        """({model: worst cost in nano-dollars}, worst tokens of the primary model)."""
        asked, n = asked_output(body)
        usd = {}
        for name, model, anthropic, per_input, per_output in self.costs:
            output = asked if asked is not None else default_output(model, anthropic, n)
            usd[name] = _nano(inputs * per_input + output * per_output)
        if asked is None:
            target = self.targets[0]
            asked = default_output(target.model, target.vendor.wire == ANTHROPIC, n)
        return usd, inputs + asked


Worst = tuple[dict[str, int], int]
NO_WORST: Worst = ({}, 0)
HOLD, CHARGE_USD, CHARGE_TOKENS = 0, 1, 2


def _settles(rules: list[Rule], model: str | None) -> tuple[tuple[int, int], ...]:
    """(rule index, what to do) for the counters a settle of ``model`` touches: release a
    hard budget's hold, charge the cost or the tokens; requests were counted at admission."""
    out = []
    for i, rule in enumerate(rules):
        covered = model is not None and model in rule.covered
        if covered and rule.unit == USD:
            out.append((i, CHARGE_USD))
        elif covered and rule.unit == TOKENS:
            out.append((i, CHARGE_TOKENS))
        elif rule.kind == RESERVE:
            out.append((i, HOLD))
    return tuple(out)


def _header_groups(rules: list[Rule], model: str) -> tuple[tuple[str, bool, tuple[int, ...]], ...]:
    """(header, is USD, indices of the rules covering ``model``) per unit, in rule order."""
    groups: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        if model in rule.covered:
            groups.setdefault(rule.unit, []).append(i)
    return tuple((HEADERS[unit], unit == USD, tuple(idx)) for unit, idx in groups.items())


def compile_plan(settings: LimitsSettings, targets: list[Target], tokens: frozenset[bytes],
                 hold_s: float) -> Plan:  # fmt: skip
    """The limits covering this chain of targets (budgets: any target; rate limits: the
    requested model and its provider)."""
    out = []
    for b in settings.budgets:
        covered = tuple(
            t.model.name for t in targets if b.scope.covers(t.model.name, t.provider.name, tokens)
        )
        if covered:
            kind = RESERVE if b.mode == "hard" else CHECK
            out.append(Rule("b", b.name, b.period, USD, kind, b.nano, b.period, covered))
    primary = targets[0] if targets else None
    for r in settings.rate_limits:
        if primary and r.scope.covers(primary.model.name, primary.provider.name, tokens):
            one = (primary.model.name,)
            if r.requests_per_minute:
                limit = r.requests_per_minute
                out.append(Rule("r", r.name, REQUESTS, REQUESTS, COUNT, limit, "minute", one))
            if r.tokens_per_minute:
                limit = r.tokens_per_minute
                out.append(Rule("r", r.name, TOKENS, TOKENS, CHECK, limit, "minute", one))
    return Plan(targets, out, hold_s)
