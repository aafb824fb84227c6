"""Which counters a request falls under, and their amounts: the per-request arithmetic.

Kept cheap (the memory backend's whole check is budgeted at 30 us): everything that depends
only on the config and the chain of targets is compiled once into a :class:`Plan` (cached
per snapshot by :class:`~proxy.engine.limits.limiter.Limits`): the rules, which counters a
settle touches and which headers it reports, per model; a model's per-token prices in integer
nano-dollars (exact when a per-1k price has at most 6 decimals, else Decimal). The plan also
keeps its current window: store keys and the ops whose amount does not depend on the request
(a count of 1, a check) are built once per window. What is left per request is the request's
worst case and one op per hard budget.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from proxy.config.limits import LimitsSettings
from proxy.engine.dialects import ANTHROPIC
from proxy.engine.limits.estimate import NANO, asked_output, default_output
from proxy.engine.limits.store import CHECK, COUNT, RESERVE, Op, Store, new_tuple
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


Tiers = tuple[tuple[int, int | Decimal, int | Decimal], ...]


def tiers(price: Price) -> Tiers:
    """Per long-prompt tier of ``price``: (above prompt tokens, input, output per token)."""
    return tuple((above, *per_token(tier)) for above, tier in price.tiers)


def tiered(
    per_input: int | Decimal, per_output: int | Decimal, tiers: Tiers, input_tokens: int
) -> tuple[int | Decimal, int | Decimal]:
    """The per-token prices of a prompt of at most ``input_tokens``: the highest of the base
    and of every tier such a prompt may reach (a bound, so never a tier too low)."""
    for above, tier_input, tier_output in tiers:
        if input_tokens > above:
            per_input, per_output = max(per_input, tier_input), max(per_output, tier_output)
    return per_input, per_output


def _rates(price: Price) -> tuple[int | Decimal, int | Decimal, Tiers]:
    return (*per_token(price), tiers(price))


def worst_case(price: Price, input_tokens: int, output_tokens: int) -> int:
    """The most this many tokens can cost at ``price``, in nano-dollars (rounded up)."""
    per_input, per_output = tiered(*per_token(price), tiers(price), input_tokens)
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
            self.fixed = new_tuple(Op, (self.store_key, self.limit, amount, self.kind, self.end))


class Plan:
    """The compiled limits of one chain of targets under one config."""

    __slots__ = (
        "costs", "end", "header_groups", "hold_s", "needs_outputs", "primary", "reserves",
        "rules", "settings", "settles", "start", "store", "targets", "template", "views",
    )  # fmt: skip

    def __init__(
        self, settings: LimitsSettings, targets: list[Target], rules: list[Rule], hold_s: float
    ) -> None:
        self.settings = settings
        self.store: Store | None = None  # set by Limits: the store of ``settings``
        self.targets = targets
        self.rules = rules
        self.hold_s = hold_s
        self.primary = targets[0].model.name if targets else ""
        self.costs = tuple(  # per target a budget covers: what bounds its cost
            (t.model.name, t.model, t.vendor.wire == ANTHROPIC, *_rates(t.model.price))
            for t in targets
            if any(r.unit == USD and t.model.name in r.covered for r in rules)
        )
        self.needs_outputs = bool(self.costs) or any(r.unit == TOKENS for r in rules)
        names = [t.model.name for t in targets]
        self.settles = {n: _settles(rules, n) for n in (*names, None)}
        self.header_groups = {n: _header_groups(rules, n) for n in names}
        self.views: list[tuple[int, View, int]] | None = None
        """(rule index, view, limit) of the budgets, once Limits first reports them."""
        self.start, self.end = 0.0, 0.0  # when every rule's current window holds
        self.template: list[Op | None] = []  # the ops of the window, None for hard budgets
        self.reserves: tuple[tuple[int, str, int, int, tuple[str, ...]], ...] = ()

    def ops(self, body: dict[str, Any], inputs: int, now: float) -> tuple[list[Op], Worst]:
        """This request's store ops (one per rule, in order) and its worst case: the
        window's ops, with each hard budget's reservation filled in."""
        if not self.start <= now < self.end:
            self._roll(now)
        worst = self.worst(body, inputs) if self.needs_outputs else NO_WORST
        ops = self.template.copy()
        usd = worst[0]
        for i, store_key, limit, end, models in self.reserves:
            amount = usd[models[0]] if len(models) == 1 else max(usd[m] for m in models)
            ops[i] = new_tuple(Op, (store_key, limit, amount, RESERVE, end))
        return ops, worst  # type: ignore[return-value]  # each None is filled in above

    def _roll(self, now: float) -> None:
        """Move the rules whose window ended (or that the clock left) to the current one."""
        for rule in self.rules:
            if not rule.start <= now < rule.end:
                rule.roll(now)
        self.start = max((r.start for r in self.rules), default=0.0)
        self.end = min((r.end for r in self.rules), default=float("inf"))
        self.template = [r.fixed if r.kind != RESERVE else None for r in self.rules]
        self.reserves = tuple(
            (i, r.store_key, r.limit, r.end, r.models)
            for i, r in enumerate(self.rules)
            if r.kind == RESERVE
        )

    def worst(self, body: dict[str, Any], inputs: int) -> Worst:
        """({model: worst cost in nano-dollars}, worst tokens of the primary model)."""
        asked, n = asked_output(body)
        usd = {}
        for name, model, anthropic, per_input, per_output, long_prompt in self.costs:
            if long_prompt:  # a price with long-prompt tiers: the one the bound may reach
                per_input, per_output = tiered(per_input, per_output, long_prompt, inputs)
            output = asked if asked is not None else default_output(model, anthropic, n)
            usd[name] = _nano(inputs * per_input + output * per_output)
        if asked is None:
            target = self.targets[0]
            asked = default_output(target.model, target.vendor.wire == ANTHROPIC, n)
        return usd, inputs + asked


Worst = tuple[dict[str, int], int]
NO_WORST: Worst = ({}, 0)
HOLD, CHARGE_USD, CHARGE_TOKENS = 0, 1, 2


Settle = tuple[tuple[tuple[int, bool, int], ...], tuple[int, ...], bool, bool]
"""What a settle of one model touches: ((rule index, holds?, what to charge), ...), the rule
indices alone, and whether it charges USD, tokens."""


def _settles(rules: list[Rule], model: str | None) -> Settle:
    """The counters a settle of ``model`` touches: release a hard budget's hold, charge the
    cost or the tokens; requests were counted at admission."""
    out = []
    for i, rule in enumerate(rules):
        covered = model is not None and model in rule.covered
        holds = rule.kind == RESERVE
        if covered and rule.unit == USD:
            out.append((i, holds, CHARGE_USD))
        elif covered and rule.unit == TOKENS:
            out.append((i, holds, CHARGE_TOKENS))
        elif holds:
            out.append((i, holds, HOLD))
    whats = {what for _, _, what in out}
    return tuple(out), tuple(i for i, _, _ in out), CHARGE_USD in whats, CHARGE_TOKENS in whats


Header = tuple[str, bool, int, int, tuple[tuple[int, int], ...]]
"""(header, is USD, rule index and limit of the first rule, (index, limit) of the others)."""


def _header_groups(rules: list[Rule], model: str) -> tuple[Header, ...]:
    """One header per unit, over the rules covering ``model``, in rule order."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for i, rule in enumerate(rules):
        if model in rule.covered:
            groups.setdefault(rule.unit, []).append((i, rule.limit))
    return tuple(
        (HEADERS[unit], unit == USD, *limits[0], tuple(limits[1:]))
        for unit, limits in groups.items()
    )


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
    return Plan(settings, targets, out, hold_s)
