"""``--workers N`` metrics: each worker's numbers, merged as one worker's would be, and the
socket exchange between workers (gone, garbled and silent siblings included)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from proxy.config.build import load_snapshot
from proxy.engine.state import GatewayState, RequestRecord
from proxy.pricing import Usage
from proxy.server import peers
from proxy.server.metrics import Metrics
from proxy.server.peers import Merged, Payload, Peers, merge, payload
from tests.prom import Samples, samples

CONFIG = Path(__file__).parents[2] / "config.yaml"


def worker(*records: RequestRecord) -> Metrics:
    """One worker's metrics after ``records``."""
    metrics = Metrics(GatewayState(load_snapshot(CONFIG, {})))
    for record in records:
        metrics.observe(record)
    return metrics


def record(model: str, cost: str, latency: float, stream: bool = False) -> RequestRecord:
    return RequestRecord(
        "req",
        "openai",
        model,
        stream,
        status=200,
        model=model,
        provider="openai",
        attempts=1,
        usage=Usage(prompt_tokens=10, completion_tokens=5),
        cost=Decimal(cost),
        latency_s=latency,
        upstream_s=latency / 2,
        overhead_s=0.0002,
    )


def test_merged_workers_read_as_one_worker_that_served_everything():
    first = [record("gpt-4o", "0.1", 0.2), record("gpt-4o", "0.2", 3.0, stream=True)]
    second = [record("gpt-4o", "0.0000001", 0.2), record("gpt-4o-mini", "0.3", 0.07)]
    alone = samples(generate_latest(worker(*first, *second).registry).decode())
    merged = Merged(merge([payload(worker(*first)), payload(worker(*second))]))
    together = samples(generate_latest(merged).decode())

    def comparable(all_samples: Samples) -> Samples:
        return {k: v for k, v in all_samples.items() if not k[0].endswith("_created")}

    workers = together.pop(("llm_edge_workers", frozenset()))
    assert workers == 2
    assert comparable(together) == comparable(alone)
    # Cost is summed exactly, then made a float once: 0.3000001, not 0.1 + 0.2 + ... in floats.
    cost = together[
        ("llm_edge_cost_usd_total", frozenset({("model", "gpt-4o"), ("provider", "openai")}))
    ]
    assert cost == float(Decimal("0.3000001"))


def test_created_is_the_earliest_and_state_gauges_the_worst():
    first, second = payload(worker(record("gpt-4o", "0", 0.1))), payload(worker())
    for family in first["families"]:
        for sample in family[4]:
            if sample[0].endswith("_created"):
                sample[2] = 5.0
    open_circuit = [["llm_edge_circuit_state", {"provider": "openai"}, 2]]
    second["families"] += [
        ["llm_edge_circuit_state", "circuits", "gauge", "", open_circuit],
        ["llm_edge_draining", "draining", "gauge", "", [["llm_edge_draining", {}, 1]]],
        ["llm_edge_in_flight_requests", "in flight", "gauge", "", [["x", {}, 0]]],
    ]
    scraped = samples(generate_latest(Merged(merge([first, second]))).decode())
    created = [v for (name, _), v in scraped.items() if name.endswith("_created")]
    assert created and all(v == 5.0 for v in created)
    assert scraped[("llm_edge_circuit_state", frozenset({("provider", "openai")}))] == 2
    assert scraped[("llm_edge_draining", frozenset())] == 1


@pytest.mark.parametrize("shared", [False, True])
def test_budget_gauges_sum_per_worker_budgets_and_not_fleet_wide_ones(shared):
    """Memory limits: each worker has budgets of its own, so spend and remaining add up.
    Redis limits: every worker reads the same counters, so the sidecar's reading is the
    freshest one (the most spent, the least left), not N times it."""

    def budget(spent: float, left: float) -> Payload:
        one = payload(worker())
        one["families"] += [
            ["llm_edge_budget_spend_usd", "s", "gauge", "", [["llm_edge_budget_spend_usd",
                                                            {"budget": "daily"}, spent]]],
            ["llm_edge_budget_remaining_usd", "r", "gauge", "", [["llm_edge_budget_remaining_usd",
                                                                {"budget": "daily"}, left]]],
        ]  # fmt: skip
        return one

    merged = Merged(merge([budget(3.0, 7.0), budget(4.0, 6.0)], shared_limits=shared))
    scraped = samples(generate_latest(merged).decode())
    daily = frozenset({("budget", "daily")})
    spent = scraped[("llm_edge_budget_spend_usd", daily)]
    left = scraped[("llm_edge_budget_remaining_usd", daily)]
    assert (spent, left) == ((4.0, 6.0) if shared else (7.0, 13.0))


def test_labelsets_of_one_worker_only_stay_whole_in_openmetrics():
    """A histogram child only the second worker has is appended whole, so the strict
    OpenMetrics encoding (buckets of one child together, in order) still parses."""
    first = payload(worker(record("gpt-4o", "0.1", 0.2)))
    second = payload(worker(record("gpt-4o-mini", "0.1", 0.2, stream=True)))
    text = openmetrics_latest(Merged(merge([first, second]))).decode()
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as strict

    families = {f.name: f for f in strict(text)}
    models = {s.labels["model"] for s in families["llm_edge_request_duration_seconds"].samples}
    assert models == {"gpt-4o", "gpt-4o-mini"}


def test_a_scrape_sums_the_siblings_that_answer(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(peers, "PEER_TIMEOUT_S", 0.2)

    async def scenario() -> Merged:
        me = Peers(tmp_path, worker(record("gpt-4o", "0.1", 0.2)))
        sibling = Peers(tmp_path, worker(record("gpt-4o", "0.2", 0.2)))
        sibling.path = tmp_path / "1.sock"
        assert await sibling.start()
        (tmp_path / "2.sock").touch()  # a worker that died without removing its socket
        garbled = await asyncio.start_unix_server(
            _answer_with(b"{not json"), str(tmp_path / "3.sock")
        )
        silent = await asyncio.start_unix_server(_never_answer, str(tmp_path / "4.sock"))
        try:
            return await me.registry()
        finally:
            for server in (garbled, silent):
                server.close()
            await sibling.close()
            assert not sibling.path.exists()

    scraped = samples(generate_latest(asyncio.run(scenario())).decode())
    assert scraped[("llm_edge_workers", frozenset())] == 2
    requests = [v for (name, _), v in scraped.items() if name == "llm_edge_requests_total"]
    assert sum(requests) == 2
    assert {r.getMessage().split()[2] for r in caplog.records} == {"2", "3", "4"}


def test_a_worker_that_cannot_make_its_socket_still_serves(tmp_path, caplog):
    missing = Peers(tmp_path / "gone", worker())
    assert asyncio.run(missing.start()) is False
    assert "scrapes see one worker" in caplog.text


NOT_METRICS = [
    b"[]",
    orjson.dumps("x"),
    b'{"families": []}',
    b'{"families": [["llm_edge_x"]], "cost": []}',
    b'{"families": [["a", "", "counter", "", [["a_total", {}, 1, 2]]]], "cost": []}',
    b'{"families": [], "cost": [["gpt-4o", "openai", "lots"]]}',
]


@pytest.mark.parametrize("answer", NOT_METRICS)
def test_an_answer_that_is_not_a_workers_metrics_is_left_out(tmp_path, answer):
    async def scenario() -> Merged:
        server = await asyncio.start_unix_server(_answer_with(answer), str(tmp_path / "9.sock"))
        try:
            return await Peers(tmp_path, worker()).registry()
        finally:
            server.close()

    scraped = samples(generate_latest(asyncio.run(scenario())).decode())
    assert scraped[("llm_edge_workers", frozenset())] == 1


def _answer_with(data: bytes):
    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return answer


async def _never_answer(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read()
