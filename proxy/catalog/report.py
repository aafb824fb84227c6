"""What the command line says about configured models: capabilities, prices against the
catalog's, the cheapest model for a need, and a cost's arithmetic. Pure: lines of text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from proxy.capabilities.model import FLAGS, Capabilities
from proxy.catalog import Catalog, Entry
from proxy.config.snapshot import ModelConfig, Snapshot
from proxy.pricing import Price, Usage, cost, format_usd

_PRICE_FIELDS = ("input_per_1k", "output_per_1k", "cache_read_per_1k", "cache_write_per_1k")


def capability_summary(caps: Capabilities) -> str:
    """``tools vision -json_schema`` (known true, ``-`` known false; unknown left out)."""
    flags = [name if getattr(caps, name) else f"-{name}" for name in FLAGS
             if getattr(caps, name) is not None]  # fmt: skip
    return " ".join(flags)


def _limit(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value // 1000}k" if value >= 1000 and value % 1000 == 0 else str(value)


def model_rows(snapshot: Snapshot) -> list[tuple[str, ...]]:
    rows = [("MODEL", "PROVIDER", "UPSTREAM", "IN $/1K", "OUT $/1K", "PRICE FROM", "CONTEXT",
             "MAX OUT", "CAPABILITIES", "ALIASES")]  # fmt: skip
    for model in snapshot.models.values():
        caps = model.capabilities
        source = model.price_source + (f" {model.price_date}" if model.price_date else "")
        rows.append(
            (
                model.name,
                model.provider,
                model.upstream_model,
                format_usd(model.price.input_per_1k),
                format_usd(model.price.output_per_1k),
                source,
                _limit(caps.context_window),
                _limit(caps.max_output_tokens),
                capability_summary(caps) or "?",
                ", ".join(model.aliases),
            )
        )
    return rows


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@dataclass(frozen=True, slots=True)
class Difference:
    model: ModelConfig
    entry: Entry
    fields: tuple[tuple[str, Decimal | None, Decimal | None], ...]  # name, configured, catalog

    def __str__(self) -> str:
        changes = "; ".join(
            f"{name} {_usd(mine)} (catalog {_usd(theirs)})" for name, mine, theirs in self.fields
        )
        mine = self.model.price_date or "not given"
        theirs = f"since {self.entry.price_date}" if self.entry.price_date else "current"
        return (
            f"{self.model.name}: {changes} [config as_of {mine}; catalog price of "
            f"{self.entry.id}: {theirs}]"
        )


def _usd(value: Decimal | None) -> str:
    return "unset" if value is None else format_usd(value)


def price_differences(snapshot: Snapshot, catalog: Catalog) -> list[Difference]:
    """Configured prices that differ from the catalog's (cache prices only when both set)."""
    out = []
    for model in snapshot.models.values():
        if model.price_source != "config":
            continue
        kind = snapshot.providers[model.provider].type
        entry = catalog.lookup(kind, model.upstream_model, model.name)
        if entry is None or entry.price is None:
            continue
        fields = tuple(
            (name.removesuffix("_per_1k"), mine, theirs)
            for name in _PRICE_FIELDS
            if (mine := getattr(model.price, name)) is not None
            and (theirs := getattr(entry.price, name)) is not None
            and mine != theirs
        )
        if fields:
            out.append(Difference(model, entry, fields))
    return out


def cheapest(
    models: Iterable[ModelConfig],
    *,
    needs: Iterable[str] = (),
    input_tokens: int = 1000,
    output_tokens: int = 1000,
) -> list[tuple[ModelConfig, Decimal]]:
    """Models with every needed capability known true, cheapest first for the given tokens."""
    usage = Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
    wanted = tuple(needs)
    able = [m for m in models if all(getattr(m.capabilities, n) is True for n in wanted)]
    ranked = [(m, cost(m.price, usage)) for m in able]
    return sorted(ranked, key=lambda item: (item[1], item[0].name))


def explain_cost(model: ModelConfig, usage: Usage, catalog_source: str | None) -> list[str]:
    """The arithmetic behind a cost, one line per priced bucket, and where the price came from."""
    price: Price = model.price.for_prompt(usage.prompt_tokens)
    read = price.cache_read_per_1k if price.cache_read_per_1k is not None else price.input_per_1k
    buckets = [
        ("input", usage.uncached_input_tokens, price.input_per_1k),
        ("cached input", usage.cached_tokens, read),
        ("output", usage.completion_tokens, price.output_per_1k),
    ]
    lines = [
        f"  {label:<13}{tokens:>10} tokens x ${format_usd(per_1k)}/1K = "
        f"${format_usd(tokens * per_1k / 1000)}"
        for label, tokens, per_1k in buckets
        if tokens or label != "cached input"
    ]
    origin = f"config (as_of {model.price_date or 'not given'})"
    if model.price_source == "catalog":
        origin = f"catalog ({catalog_source}; from {model.price_date or 'its release'})"
    lines.append(f"  {'total':<13}{'':>10}          = ${format_usd(cost(price, usage))}")
    above = [limit for limit, tier in model.price.tiers if tier is price]
    if above:
        lines.append(f"  (the long-prompt tier: prompts above {above[0]} tokens)")
    lines.append(f"  price of {model.name} from the {origin}")
    return lines
