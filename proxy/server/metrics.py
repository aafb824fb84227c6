"""Prometheus metrics on ``GET /metrics``: one registry per app, fed by each request's record.

:meth:`Metrics.observe` runs at the end of every completion request, on the hot path, so it
only touches child metrics cached per label set (one dict lookup each). What mirrors the
gateway's state (in-flight requests, open streams, circuits, reloads) is read at scrape time
instead of being updated on every change. Cost is summed in ``Decimal`` and converted to float
once per scrape, so the counter is the float nearest the exact sum of the ``x-llm-cost-usd``
headers, never a float sum that drifts.

Labels come from the config (model, provider) and small fixed sets, never from the client: an
unknown model is counted with ``model=""``, so no request can create a new series at will.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy.engine.state import GatewayState, RequestRecord

PREFIX = "llm_edge"
# LLM calls take seconds to minutes; the gateway's own share should stay well under 1 ms.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
TARGET = ("model", "provider")
ZERO = Decimal(0)


class _Series(NamedTuple):
    """The child metrics of one (model, provider, stream), cached after first use."""

    attempts: Any
    retries: Any
    latency: Any
    upstream: Any
    first_token: Any
    input_tokens: Any
    output_tokens: Any
    cached_tokens: Any
    cache_write_tokens: Any
    disconnects: Any


class Metrics:
    """The gateway's metrics; ``observe`` is a ``GatewayState`` observer."""

    def __init__(self, state: GatewayState) -> None:
        self.registry = CollectorRegistry()
        self._cost: dict[tuple[str, str], Decimal] = {}
        self._series: dict[tuple[str, str, bool], _Series] = {}
        self._requests: dict[tuple[str, ...], Any] = {}
        self._overhead: dict[str, Any] = {}
        self._define()
        self.registry.register(_StateCollector(state, self._cost))

    def _define(self) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = TARGET) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple) -> Histogram:
            return Histogram(
                f"{PREFIX}_{name}", doc, labels, registry=self.registry, buckets=buckets
            )

        labels = ("dialect", "model", "provider", "stream", "status", "error_type")
        self.requests = counter("requests", "Completion requests answered.", labels)
        self.attempts = counter("upstream_attempts", "Upstream attempts made (retries included).")
        self.retries = counter("upstream_retries", "Upstream attempts after a request's first.")
        self.disconnects = counter("client_disconnects", "Requests the client left early.")
        self.input_tokens = counter("input_tokens", "Input tokens, cached ones included.")
        self.output_tokens = counter("output_tokens", "Output tokens.")
        self.cached_tokens = counter("cached_tokens", "Input tokens read from the prompt cache.")
        self.cache_write_tokens = counter(
            "cache_write_tokens", "Input tokens written to the prompt cache."
        )
        self.latency = histogram(
            "request_duration_seconds",
            "Whole request, as the client saw it (streams: to the last event).",
            (*TARGET, "stream"),
            LATENCY_BUCKETS,
        )
        self.upstream = histogram(
            "upstream_duration_seconds",
            "Time spent in upstream attempts (before streaming the body).",
            TARGET,
            LATENCY_BUCKETS,
        )
        self.first_token = histogram(
            "time_to_first_token_seconds",
            "Streams: from the request's arrival to the first event sent.",
            TARGET,
            FIRST_TOKEN_BUCKETS,
        )
        self.overhead = histogram(
            "overhead_seconds",
            "Time the gateway itself added: total minus upstream time and backoff waits.",
            ("dialect",),
            OVERHEAD_BUCKETS,
        )

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
            requests = self._requests[key] = self.requests.labels(*key)
        requests.inc()
        series = self._series.get((model, provider, record.stream))
        if series is None:
            series = self._new_series(model, provider, record.stream)
        series.latency.observe(record.latency_s)
        if record.attempts:
            series.attempts.inc(record.attempts)
            series.upstream.observe(record.upstream_s)
            if record.attempts > 1:
                series.retries.inc(record.attempts - 1)
        if record.first_token_s is not None:
            series.first_token.observe(record.first_token_s)
        if record.status == 200:  # the overhead is measured when the response starts
            self._overhead_child(record.dialect).observe(record.overhead_s)
        if record.client_disconnected:
            series.disconnects.inc()
        self._count_usage(record, series)

    def _count_usage(self, record: RequestRecord, series: _Series) -> None:
        usage = record.usage
        if usage is not None:
            series.input_tokens.inc(usage.prompt_tokens)
            series.output_tokens.inc(usage.completion_tokens)
            if usage.cached_tokens:
                series.cached_tokens.inc(usage.cached_tokens)
            if usage.cache_write_tokens:
                series.cache_write_tokens.inc(usage.cache_write_tokens)
        if record.cost:
            target = (record.model or "", record.provider or "")
            self._cost[target] = self._cost.get(target, ZERO) + record.cost

    def _new_series(self, model: str, provider: str, stream: bool) -> _Series:
        series = _Series(
            attempts=self.attempts.labels(model, provider),
            retries=self.retries.labels(model, provider),
            latency=self.latency.labels(model, provider, "true" if stream else "false"),
            upstream=self.upstream.labels(model, provider),
            first_token=self.first_token.labels(model, provider),
            input_tokens=self.input_tokens.labels(model, provider),
            output_tokens=self.output_tokens.labels(model, provider),
            cached_tokens=self.cached_tokens.labels(model, provider),
            cache_write_tokens=self.cache_write_tokens.labels(model, provider),
            disconnects=self.disconnects.labels(model, provider),
        )
        self._series[(model, provider, stream)] = series
        return series

    def _overhead_child(self, dialect: str) -> Any:
        child = self._overhead.get(dialect)
        if child is None:
            child = self._overhead[dialect] = self.overhead.labels(dialect)
        return child


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
    """The Prometheus text format (or OpenMetrics, when the scraper asks for it)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": content_type})
