"""Turn one run's raw figures into added latencies, ratios, issue-6 checks and tables.

Added latency = the target's percentile minus the direct path's same percentile, same
workload, same run (a difference of percentiles, the usual proxy-overhead convention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OURS = "ours-1w"
PEERS = ("direct", "floor", "nginx", "litellm")
Row = tuple[str, Callable[[dict], Any]]


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def derive(targets: dict[str, dict]) -> None:
    """Add ``added`` (latency over direct) and ``streams_added`` to every target, in place."""
    direct = targets.get("direct", {})
    for data in targets.values():
        if "wrk" not in data:
            continue
        added: dict = {}
        for workload, runs in data["wrk"].items():
            for level, run in runs.items():
                base = _get(direct, "wrk", workload, level)
                if base:
                    added.setdefault(workload, {})[level] = {
                        q: _sub(run[f"{q}_ms"], base[f"{q}_ms"]) for q in ("p50", "p90", "p99")
                    }
        data["added"] = added
        data["streams_added"] = {
            workload: {
                key: _sub(_get(timing, key, "p50"), _get(direct, "streams", workload, key, "p50"))
                for key in ("ttfb_ms", "ttft_ms", "total_ms")
            }
            for workload, timing in data.get("streams", {}).items()
        }


def _rps(t: dict) -> float | None:
    return _get(t, "wrk", "small", "c32", "rps")


def _cpu(t: dict) -> float | None:
    return _get(t, "wrk", "small", "c32", "cpu_us_per_req")


def _added(t: dict, q: str = "p50", workload: str = "small", level: str = "c1") -> float | None:
    return _get(t, "added", workload, level, q)


def _ttft_added(t: dict) -> float | None:
    return _get(t, "streams_added", "stream", "ttft_ms")


def ratios(targets: dict[str, dict], ours: str = OURS) -> dict[str, dict[str, float | None]]:
    """ours / peer for throughput, added latency, CPU per request, RSS, stream TTFT added."""
    me = targets.get(ours, {})
    metrics: dict[str, Callable[[dict], Any]] = {
        "throughput c32 (small)": _rps,
        "added p50 c1 (small)": _added,
        "added p99 c1 (small)": lambda t: _added(t, "p99"),
        "latency p50 c1 (small)": lambda t: _get(t, "wrk", "small", "c1", "p50_ms"),
        "cpu per request": _cpu,
        "rss idle": lambda t: t.get("rss_idle_mb"),
        "rss under load": lambda t: t.get("rss_load_mb"),
        "stream ttft added p50": _ttft_added,
    }
    return {
        name: {peer: _div(fn(me), fn(targets.get(peer, {}))) for peer in PEERS}
        for name, fn in metrics.items()
    }


def _check(goal: str, value: float | None, limit: float | None, unit: str, at_most: bool) -> dict:
    if value is None or limit is None:
        return {
            "goal": goal,
            "value": value,
            "limit": limit,
            "met": None,
            "note": " (not measured)",
        }
    met = value <= limit if at_most else value >= limit
    gap = value - limit
    pct = f" ({gap / limit:+.0%})" if limit else ""
    note = "" if met else f" by {abs(gap):.3f}{unit}{pct}"
    return {"goal": goal, "value": value, "limit": limit, "met": met, "note": note}


def checks(targets: dict[str, dict]) -> list[dict]:
    """Issue 6's 'done when' figures that one run of run.py can show."""
    me, floor = targets.get(OURS, {}), targets.get("floor", {})
    litellm, two = targets.get("litellm", {}), targets.get("ours-2w", {})
    oa = _sub(_added(me, workload="small_anthropic"), _added(me))
    return [
        _check("added p50, c1, 1 worker <= 0.30 ms", _added(me), 0.30, " ms", True),
        _check("added p99, c1, 1 worker <= 1 ms", _added(me, "p99"), 1.0, " ms", True),
        _check(
            "throughput c32 >= 70% of the floor", _rps(me), _mul(_rps(floor), 0.7), " req/s", False
        ),
        _check("throughput c32 >= 40x LiteLLM", _rps(me), _mul(_rps(litellm), 40), " req/s", False),
        _check("CPU per request <= 1.3x the floor", _cpu(me), _mul(_cpu(floor), 1.3), " us", True),
        _check("stream TTFT added p50 <= 0.6 ms", _ttft_added(me), 0.6, " ms", True),
        _check(
            "OpenAI->Anthropic adds <= 0.1 ms over OpenAI->OpenAI (p50 c1)", oa, 0.1, " ms", True
        ),
        _check("RSS idle <= 60 MB", me.get("rss_idle_mb"), 60.0, " MB", True),
        _check("2 workers serve more than 1 (c32)", _rps(two), _rps(me), " req/s", False),
    ]


def _mul(a: float | None, k: float) -> float | None:
    return None if a is None else a * k


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


ROWS: list[Row] = [
    ("small c1 p50 ms", lambda t: _get(t, "wrk", "small", "c1", "p50_ms")),
    ("small c1 p99 ms", lambda t: _get(t, "wrk", "small", "c1", "p99_ms")),
    ("added c1 p50 ms", _added),
    ("added c1 p99 ms", lambda t: _added(t, "p99")),
    ("small c8 p50 ms", lambda t: _get(t, "wrk", "small", "c8", "p50_ms")),
    ("small c8 p99 ms", lambda t: _get(t, "wrk", "small", "c8", "p99_ms")),
    ("added c8 p50 ms", lambda t: _added(t, level="c8")),
    ("small c32 req/s", _rps),
    ("CPU us/request (c32)", _cpu),
    ("anthropic-upstream c1 p50 ms", lambda t: _get(t, "wrk", "small_anthropic", "c1", "p50_ms")),
    ("anthropic-upstream added c1 p50", lambda t: _added(t, workload="small_anthropic")),
    ("anthropic-upstream c32 req/s", lambda t: _get(t, "wrk", "small_anthropic", "c32", "rps")),
    ("large 200KB c1 p50 ms", lambda t: _get(t, "wrk", "large", "c1", "p50_ms")),
    ("large added c1 p50 ms", lambda t: _added(t, workload="large")),
    ("large c32 req/s", lambda t: _get(t, "wrk", "large", "c32", "rps")),
    ("stream TTFT p50 ms", lambda t: _get(t, "streams", "stream", "ttft_ms", "p50")),
    ("stream TTFT added p50 ms", _ttft_added),
    ("stream total p50 ms", lambda t: _get(t, "streams", "stream", "total_ms", "p50")),
    (
        "anthropic stream TTFT added ms",
        lambda t: _get(t, "streams_added", "stream_anthropic", "ttft_ms"),
    ),
    ("RSS idle MB", lambda t: t.get("rss_idle_mb")),
    ("RSS under load MB", lambda t: t.get("rss_load_mb")),
    ("RSS after MB", lambda t: t.get("rss_after_mb")),
    ("self-reported overhead mean ms", lambda t: _get(t, "overhead_metric", "mean_ms")),
]


def table(targets: dict[str, dict], markdown: bool) -> str:
    names = [n for n, t in targets.items() if "skipped" not in t]
    header = ["figure", *names]
    body = [[label, *(_fmt(fn(targets[n])) for n in names)] for label, fn in ROWS]
    return _render([header, *body], markdown)


def ratio_table(rat: dict[str, dict[str, float | None]], markdown: bool) -> str:
    header = ["ours-1w / ...", *PEERS]
    body = [[name, *(_fmt(v, 2) for v in row.values())] for name, row in rat.items()]
    return _render([header, *body], markdown)


def check_table(items: list[dict], markdown: bool) -> str:
    header = ["issue 6 target", "measured", "limit", "verdict"]
    verdict = {True: "MET", False: "MISSED", None: "n/a"}
    body = [
        [c["goal"], _fmt(c["value"]), _fmt(c["limit"]), f"{verdict[c['met']]}{c['note']}"]
        for c in items
    ]
    return _render([header, *body], markdown)


def _render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=False))
        )
        for r in rows
    )
