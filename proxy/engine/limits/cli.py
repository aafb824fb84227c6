"""``llm-edge-agent budgets``: the limits section of a running sidecar's ``/status``, as tables."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Any

import orjson


def fetch_status(url: str, token: str = "") -> dict[str, Any]:
    request = urllib.request.Request(f"{url.rstrip('/')}/status")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as reply:
        return orjson.loads(reply.read())


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def render(limits: dict[str, Any] | None) -> list[str]:
    if not limits:
        return ["no budgets or rate limits are configured"]
    lines = [f"backend: {limits['backend']} (fail_open: {str(limits['fail_open']).lower()})"]
    if limits.get("error"):
        lines.append(f"error: {limits['error']}")
    budgets = limits.get("budgets") or []
    if budgets:
        head = ("BUDGET", "PERIOD", "MODE", "LIMIT $", "SPENT $", "RESERVED $", "LEFT $", "RESETS")
        keys = ("name", "period", "mode", "limit_usd", "spent_usd", "reserved_usd")
        rows = [tuple(str(b[k]) for k in (*keys, "remaining_usd", "resets_at")) for b in budgets]
        lines += _table([head, *rows])
    rates = limits.get("rate_limits") or []
    if rates:
        head = ("RATE LIMIT", "UNIT", "PER MINUTE", "USED", "LEFT", "RESETS")
        keys = ("name", "unit", "limit_per_minute", "used", "remaining", "resets_at")
        lines += _table([head, *(tuple(str(r[k]) for k in keys) for r in rates)])
    return lines


def print_budgets(url: str, token: str = "") -> int:
    try:
        status = fetch_status(url, token)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        print(f"cannot read {url}/status: {exc}", file=sys.stderr)
        return 1
    print("\n".join(render(status.get("limits"))))
    return 0
