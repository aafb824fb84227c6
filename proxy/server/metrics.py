"""Prometheus metrics on ``GET /metrics``: one registry per app, fed by each request's record.

:meth:`Metrics.observe` runs at the end of every completion request, on the hot path, so it
only adds to plain numbers cached per label set (no lock, no prometheus-client call); a
collector exports them at scrape time exactly as ``Counter``/``Histogram`` children would
(names, labels, types, cumulative ``le``-inclusive buckets, ``_created``). What mirrors the
gateway's state (in-flight requests, open streams, circuits, reloads) is read at scrape time
instead of being updated on every change. Cost is summed in ``Decimal`` and converted to float
once per scrape, so the counter is the float nearest the exact sum of the ``x-llm-cost-usd``
headers, never a float sum that drifts.

Labels come from the config (model, provider) and small fixed sets, never from the client: an
unknown model is counted with ``model=""``, so no request can create a new series at will.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from proxy.engine.limits.report import LimitsCollector
from proxy.engine.state import GatewayState, RequestRecord
from proxy.server.cache_metrics import CacheMetrics

if TYPE_CHECKING:
    from proxy.server.peers import Peers

PREFIX = "llm_edge"
# LLM calls take seconds to minutes; the gateway's own share should stay well under 1 ms.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
TARGET = ("model", "provider")
ZERO = Decimal(0)
INF = float("inf")
# prometheus-client's Histogram bounds: floats, +Inf last.
LATENCY_BOUNDS = (*map(float, LATENCY_BUCKETS), INF)
FIRST_TOKEN_BOUNDS = (*map(float, FIRST_TOKEN_BUCKETS), INF)
OVERHEAD_BOUNDS = (*map(float, OVERHEAD_BUCKETS), INF)


class _Histogram:
    """One labelled histogram child as plain numbers: per-bucket counts and a float sum.

    Exported with prometheus-client's own semantics (``le`` inclusive, cumulative buckets, the
    sum added in arrival order), so the exposition is the same as a ``Histogram`` child's.
    """

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # ends with +Inf
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1

    def samples(self, name: str, labels: dict[str, str]) -> Iterator[Sample]:
        acc = 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            acc += count
            yield Sample(f"{name}_bucket", {**labels, "le": floatToGoString(bound)}, acc)
        yield Sample(f"{name}_count", labels, acc)
        yield Sample(f"{name}_sum", labels, self.sum)
        if prometheus_metrics._use_created:
            yield Sample(f"{name}_created", labels, self.created)


class _Target:
    """The plain counters and histograms of one (model, provider); streams or not."""

    __slots__ = (
        "attempts",
        "cache_write_tokens",
        "cached_tokens",
        "created",
        "disconnects",
        "first_token",
        "input_tokens",
        "output_tokens",
        "retries",
        "upstream",
        "usage_missing",
    )

    def __init__(self) -> None:
        self.attempts = self.retries = self.disconnects = 0.0
        self.input_tokens = self.output_tokens = 0.0
        self.cached_tokens = self.cache_write_tokens = self.usage_missing = 0.0
        self.upstream = _Histogram(LATENCY_BOUNDS)
        self.first_token = _Histogram(FIRST_TOKEN_BOUNDS)
        self.created = time.time()


class _Count:
    """One labelled counter child as a plain float (prometheus-client counts in floats too)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


# (family, help text, _Target attribute) in the order prometheus-client registered them.
_COUNTERS = (
    ("upstream_attempts", "Upstream attempts made (retries included).", "attempts"),
    ("upstream_retries", "Upstream attempts after a request's first.", "retries"),
    ("client_disconnects", "Requests the client left early.", "disconnects"),
    ("input_tokens", "Input tokens, cached ones included.", "input_tokens"),
    ("output_tokens", "Output tokens.", "output_tokens"),
    ("cached_tokens", "Input tokens read from the prompt cache.", "cached_tokens"),
    ("cache_write_tokens", "Input tokens written to the prompt cache.", "cache_write_tokens"),
    ("usage_missing", "Answers whose upstream reported no usage (cost unknown).", "usage_missing"),
)
_LATENCY = (
    "request_duration_seconds",
    "Whole request, as the client saw it (streams: to the last event).",
)
_HISTOGRAMS = (
    (
        "upstream_duration_seconds",
        "Time spent in upstream attempts (before streaming the body).",
        "upstream",
    ),
    (
        "time_to_first_token_seconds",
        "Streams: from the request's arrival to the first event sent.",
        "first_token",
    ),
)
REQUEST_LABELS = ("dialect", "model", "provider", "stream", "status", "error_type")


class Metrics:
    """The gateway's metrics; ``observe`` is a ``GatewayState`` observer.

    ``observe`` adds to plain numbers (no lock, no prometheus-client call per sample); a
    collector turns them into metric families at scrape time.
    """

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.registry = CollectorRegistry()
        self._cost: dict[tuple[str, str], Decimal] = {}
        self._targets: dict[tuple[str, str], _Target] = {}
        # (model, provider, stream) -> its target and its latency histogram.
        self._series: dict[tuple[str, str, bool], tuple[_Target, _Histogram]] = {}
        self._requests: dict[tuple[str, ...], _Count] = {}
        self._outcomes: dict[tuple[str, str, str], _Count] = {}  # (model, provider, outcome)
        self._overhead: dict[str, _Histogram] = {}
        # With --workers N: the sibling workers whose numbers a scrape adds (proxy.server.peers).
        self.peers: Peers | None = None
        self.registry.register(_RequestCollector(self))
        self.registry.register(_StateCollector(state, self._cost))
        self.cache = CacheMetrics(state)
        self.registry.register(self.cache)
        self.registry.register(LimitsCollector(state))

    @property
    def cost(self) -> dict[tuple[str, str], Decimal]:
        """Exact cost sums per (model, provider)."""
        return dict(self._cost)

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (success or error, stream or not)."""
        model, provider = record.model or "", record.provider or ""
        key = (
            record.dialect,
            model,
            provider,
            "true" if record.stream else "false",
            str(record.status),
            record.error_type or "",
        )
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = _Count()
        requests.value += 1
        series = self._series.get((model, provider, record.stream))
        if series is None:
            series = self._new_series(model, provider, record.stream)
        target, latency = series
        latency.observe(record.latency_s)
        for outcome in record.outcomes:
            count = self._outcomes.get(outcome)
            if count is None:
                count = self._outcomes[outcome] = _Count()
            count.value += 1
        if record.attempts:
            target.attempts += record.attempts
            target.upstream.observe(record.upstream_s)
            if record.attempts > 1:
                target.retries += record.attempts - 1
        if record.first_token_s is not None:
            target.first_token.observe(record.first_token_s)
        if record.status == 200:  # the overhead is measured when the response starts
            overhead = self._overhead.get(record.dialect)
            if overhead is None:
                overhead = self._overhead[record.dialect] = _Histogram(OVERHEAD_BOUNDS)
            overhead.observe(record.overhead_s)
        if record.client_disconnected:
            target.disconnects += 1
        if record.cache is not None:
            self.cache.observe(record)
            if record.cache == "hit":
                return  # no tokens used, nothing spent
        self._count_usage(record, target)

    def _new_series(self, model: str, provider: str, stream: bool) -> tuple[_Target, _Histogram]:
        target = self._targets.get((model, provider))
        if target is None:
            target = self._targets[(model, provider)] = _Target()
        series = self._series[(model, provider, stream)] = (target, _Histogram(LATENCY_BOUNDS))
        return series

    def _count_usage(self, record: RequestRecord, target: _Target) -> None:
        usage = record.usage
        if usage is not None:
            target.input_tokens += usage.prompt_tokens
            target.output_tokens += usage.completion_tokens
            if usage.cached_tokens:
                target.cached_tokens += usage.cached_tokens
            if usage.cache_write_tokens:
                target.cache_write_tokens += usage.cache_write_tokens
        elif record.usage_missing:
            target.usage_missing += 1
        if record.cost:
            key = (record.model or "", record.provider or "")
            self._cost[key] = self._cost.get(key, ZERO) + record.cost


class _RequestCollector:
    """The per-request counters and histograms, as ``Counter``/``Histogram`` would export them."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        counts = [
            (dict(zip(REQUEST_LABELS, key, strict=True)), count.value, count.created)
            for key, count in m._requests.items()
        ]
        yield _counter("requests", "Completion requests answered.", counts)
        targets = [
            ({"model": model, "provider": provider}, target)
            for (model, provider), target in m._targets.items()
        ]
        for name, doc, attr in _COUNTERS:
            values = [(labels, getattr(t, attr), t.created) for labels, t in targets]
            yield _counter(name, doc, values)
        outcomes = [
            ({"model": model, "provider": provider, "outcome": outcome}, c.value, c.created)
            for (model, provider, outcome), c in m._outcomes.items()
        ]
        yield _counter(
            "upstream_attempt_outcomes",
            "Upstream attempts by outcome (success, cancelled or the error type), per model "
            "and provider tried.",
            outcomes,
        )
        latency = [
            ({"model": model, "provider": provider, "stream": "true" if stream else "false"}, h)
            for (model, provider, stream), (_, h) in m._series.items()
        ]
        yield _histogram(*_LATENCY, latency)
        for name, doc, attr in _HISTOGRAMS:
            yield _histogram(name, doc, [(labels, getattr(t, attr)) for labels, t in targets])
        overhead = [({"dialect": dialect}, h) for dialect, h in m._overhead.items()]
        yield _histogram(
            "overhead_seconds",
            "Time the gateway itself added: total minus upstream time and backoff waits.",
            overhead,
        )


def _counter(name: str, doc: str, children: list[tuple[dict[str, str], float, float]]) -> Metric:
    family = Metric(f"{PREFIX}_{name}", doc, "counter")
    for labels, value, created in children:
        family.samples.append(Sample(f"{PREFIX}_{name}_total", labels, value))
        if prometheus_metrics._use_created:
            family.samples.append(Sample(f"{PREFIX}_{name}_created", labels, created))
    return family


def _histogram(name: str, doc: str, children: list[tuple[dict[str, str], _Histogram]]) -> Metric:
    family = Metric(f"{PREFIX}_{name}", doc, "histogram")
    for labels, histogram in children:
        family.samples.extend(histogram.samples(f"{PREFIX}_{name}", labels))
    return family


class _StateCollector:
    """Values read at scrape time: the gateway's state, and the exact cost sums."""

    def __init__(self, state: GatewayState, cost: dict[tuple[str, str], Decimal]) -> None:
        self._state, self._cost = state, cost

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield GaugeMetricFamily(
            f"{PREFIX}_in_flight_requests", "Completion requests running now.", state.in_flight
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_open_streams", "Streams being relayed now.", state.streams_open
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_draining", "1 once shutdown began (/readyz answers 503).", state.draining
        )
        circuits = GaugeMetricFamily(
            f"{PREFIX}_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            labels=["provider"],
        )
        states = state.breakers.states()
        for provider in sorted(set(state.snapshot.providers) | set(states)):
            circuits.add_metric([provider], CIRCUIT[states.get(provider, "closed")])
        yield circuits
        reloads = CounterMetricFamily(
            f"{PREFIX}_config_reloads", "Config reloads by result (ok, error).", labels=["result"]
        )
        for result, count in sorted(state.reload_counts.items()):
            reloads.add_metric([result], count)
        yield reloads
        cost = CounterMetricFamily(
            f"{PREFIX}_cost_usd",
            "Cost of the requests in USD, from the config's prices.",
            labels=TARGET,
        )
        for (model, provider), amount in sorted(self._cost.items()):
            cost.add_metric([model, provider], float(amount))
        yield cost


METRICS: web.AppKey[Metrics] = web.AppKey("metrics")


async def metrics_endpoint(request: web.Request) -> web.Response:
    """The Prometheus text format (or OpenMetrics, when the scraper asks for it); with
    ``--workers N``, the numbers of every worker, summed."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    metrics = request.app[METRICS]
    source = metrics.registry if metrics.peers is None else await metrics.peers.registry()
    body = encode(source)
    return web.Response(body=body, headers={"Content-Type": content_type})
