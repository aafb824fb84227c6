"""How the limits look from outside: ``/status`` (read from the store) and ``/metrics``
(the values this gateway last saw, read at scrape time: no store call per scrape)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from proxy.config.limits import LimitsSettings
from proxy.engine.limits.estimate import from_nano
from proxy.engine.limits.limiter import Limits
from proxy.engine.limits.plan import key
from proxy.engine.limits.windows import iso, window
from proxy.pricing import format_usd

PREFIX = "llm_edge"


def _keys(settings: LimitsSettings, now: float) -> list[tuple[str, str, str, int, int]]:
    """(kind, name, key, limit, window end) of every counter in its current window."""
    out = []
    for b in settings.budgets:
        start, end = window(b.period, now)
        out.append(("budget", b.name, key("b", b.name, b.period, start), b.nano, end))
    start, end = window("minute", now)
    for r in settings.rate_limits:
        if r.requests_per_minute:
            name = key("r", r.name, "requests", start)
            out.append(("requests", r.name, name, r.requests_per_minute, end))
        if r.tokens_per_minute:
            out.append(
                ("tokens", r.name, key("r", r.name, "tokens", start), r.tokens_per_minute, end)
            )
    return out


async def limits_status(limits: Limits, settings: LimitsSettings) -> dict[str, Any]:
    """Every budget's spend, limit and reset time, and every rate limit's counts, now."""
    now = limits.clock()
    rows = _keys(settings, now)
    body: dict[str, Any] = {"backend": settings.backend, "fail_open": settings.fail_open}
    try:
        values = await limits.store(settings).read([row[2] for row in rows], now)
    except (RedisError, OSError) as exc:
        body["error"] = f"store unreachable ({type(exc).__name__})"
        values = []
    body["budgets"], body["rate_limits"] = [], []
    modes = {b.name: b for b in settings.budgets}
    for (kind, name, _, limit, end), (spent, reserved) in zip(rows, values, strict=False):
        if kind == "budget":
            body["budgets"].append(
                {
                    "name": name,
                    "period": modes[name].period,
                    "mode": modes[name].mode,
                    "limit_usd": format_usd(from_nano(limit)),
                    "spent_usd": format_usd(from_nano(spent)),
                    "reserved_usd": format_usd(from_nano(reserved)),
                    "remaining_usd": format_usd(from_nano(max(limit - spent, 0))),
                    "resets_at": iso(end),
                }
            )
        else:
            body["rate_limits"].append(
                {
                    "name": name,
                    "unit": kind,
                    "limit_per_minute": limit,
                    "used": spent,
                    "remaining": max(limit - spent, 0),
                    "resets_at": iso(end),
                }
            )
    return body


class LimitsCollector:
    """Spend, remaining and rejections per budget; fail-open events; at scrape time."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        limits: Limits = self._state.limits
        spend = GaugeMetricFamily(
            f"{PREFIX}_budget_spend_usd",
            "Spend in the budget's current window, as this gateway last saw it.",
            labels=["budget"],
        )
        left = GaugeMetricFamily(
            f"{PREFIX}_budget_remaining_usd",
            "The budget's limit minus its spend, as this gateway last saw it.",
            labels=["budget"],
        )
        rejections = CounterMetricFamily(
            f"{PREFIX}_limit_rejections",
            "Requests refused with 429 budget_exceeded, per budget or rate limit.",
            labels=["limit", "unit"],
        )
        for (name, _), view in sorted(limits.views.items()):
            if view.unit == "usd":
                spend.add_metric([name], float(from_nano(view.spent)))
                left.add_metric([name], float(from_nano(max(view.limit - view.spent, 0))))
            rejections.add_metric([name, view.unit], view.rejections)
        yield spend
        yield left
        yield rejections
        yield CounterMetricFamily(
            f"{PREFIX}_limits_unenforced",
            "Limit checks or charges skipped because the store (Redis) was unreachable.",
            value=limits.unenforced,
        )
