"""The response cache's metrics: lookups and cost saved from each request's record, the
backend's own counters (stores, evictions, bytes, Redis errors) read at scrape time.

Cost saved is summed in ``Decimal`` like the cost counter, so it is the float nearest the exact
sum of the ``x-llm-cost-saved-usd`` headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy.engine.cache.stats import CacheStats
from proxy.engine.state import GatewayState, RequestRecord

PREFIX = "llm_edge_cache"
ZERO = Decimal(0)


class CacheMetrics:
    """A ``GatewayState`` observer and a prometheus-client collector."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._lookups: dict[tuple[str, str], int] = {}  # (model, result) -> requests
        self._saved: dict[tuple[str, str], Decimal] = {}  # (model, provider) -> USD

    def observe(self, record: RequestRecord) -> None:
        if record.cache is None:
            return
        key = (record.model or "", record.cache)
        self._lookups[key] = self._lookups.get(key, 0) + 1
        if record.cost_saved:
            where = (record.model or "", record.provider or "")
            self._saved[where] = self._saved.get(where, ZERO) + record.cost_saved

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Completion requests the response cache applied to, by result (hit, miss, bypass).",
            labels=("model", "result"),
        )
        for (model, result), count in sorted(self._lookups.items()):
            lookups.add_metric([model, result], count)
        yield lookups
        saved = CounterMetricFamily(
            f"{PREFIX}_cost_saved_usd",
            "What the answers served from the cache cost when they were first answered, in USD.",
            labels=("model", "provider"),
        )
        for (model, provider), amount in sorted(self._saved.items()):
            saved.add_metric([model, provider], float(amount))
        yield saved
        yield from _backend(self._state.cache.stats)


def _backend(stats: CacheStats) -> Iterator[Metric]:
    yield CounterMetricFamily(f"{PREFIX}_stores", "Answers stored.", stats.stores)
    yield CounterMetricFamily(
        f"{PREFIX}_stored_bytes", "Bytes of the answers stored (encoded).", stats.bytes_stored
    )
    evictions = CounterMetricFamily(
        f"{PREFIX}_evictions",
        "Entries dropped before being read: lru (memory bound), expired, reload (the model's "
        "routing changed), unreadable.",
        labels=("reason",),
    )
    for reason, count in sorted(stats.evictions.items()):
        evictions.add_metric([reason], count)
    yield evictions
    yield CounterMetricFamily(
        f"{PREFIX}_redis_errors",
        "Redis calls that failed or passed their deadline (each answered as a miss).",
        stats.redis_errors,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_memory_bytes", "Bytes the memory backend's entries take.", stats.memory_bytes
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_memory_entries", "Entries in the memory backend.", stats.memory_entries
    )
