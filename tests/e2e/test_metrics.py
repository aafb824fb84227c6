"""``GET /metrics`` after real traffic, parsed with prometheus-client's own parser.

Every counter is checked against what the clients saw: the requests sent, the attempts and
token counts in the response headers, and the cost headers summed exactly in ``Decimal``.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.sim.faults import Fault
from tests.http import get

Labels = frozenset[tuple[str, str]]
OPENAI_CLAUDE = "claude-3-5-sonnet-20241022"  # reached through its alias claude-3.5-sonnet
HAIKU = "claude-3-5-haiku-20241022"
REQUEST_LABELS = ("dialect", "model", "provider", "stream", "status", "error_type")


def scrape(url: str) -> dict[str, dict[Labels, float]]:
    """Every sample of ``/metrics``: sample name -> label set -> value."""
    reply = get(f"{url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return samples[name][frozenset(labels.items())]


class Ledger:
    """What the clients saw, per (model, provider): the expected metric values."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, ...]] = Counter()
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.tokens_in: Counter[tuple[str, str]] = Counter()
        self.tokens_out: Counter[tuple[str, str]] = Counter()
        self.cost: dict[tuple[str, str], Decimal] = {}
        self.latencies: Counter[tuple[str, str, str]] = Counter()

    def add(
        self,
        dialect: str,
        target: tuple[str, str],
        stream: bool,
        headers: Any,
        usage: tuple[int, int],
        cost: Decimal,
    ) -> None:
        flag = "true" if stream else "false"
        self.requests[(dialect, *target, flag, "200", "")] += 1
        self.attempts[target] += int(headers["x-llm-attempts"])
        self.tokens_in[target] += usage[0]
        self.tokens_out[target] += usage[1]
        self.cost[target] = self.cost.get(target, Decimal(0)) + cost
        self.latencies[(*target, flag)] += 1


def openai_plain(gateway, ledger: Ledger, model: str, target: tuple[str, str]) -> None:
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": f"Tell me about {model}."}]
    )
    headers = raw.headers
    tokens = (int(headers["x-llm-input-tokens"]), int(headers["x-llm-output-tokens"]))
    ledger.add("openai", target, False, headers, tokens, Decimal(headers["x-llm-cost-usd"]))


def openai_stream(gateway, ledger: Ledger) -> None:
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "say: streams are counted too"}],
    )
    usage = list(raw.parse())[-1].usage
    cost = Decimal(repr(usage.model_extra["cost"]))  # same digits as the exact decimal
    tokens = (usage.prompt_tokens, usage.completion_tokens)
    ledger.add("openai", ("gpt-4o", "openai"), True, raw.headers, tokens, cost)


def anthropic_calls(gateway, ledger: Ledger) -> None:
    client = gateway.anthropic()
    messages = [{"role": "user", "content": "say: counted in claude"}]
    raw = client.messages.with_raw_response.create(model=HAIKU, max_tokens=64, messages=messages)
    headers = raw.headers
    tokens = (int(headers["x-llm-input-tokens"]), int(headers["x-llm-output-tokens"]))
    target = (HAIKU, "anthropic")
    ledger.add("anthropic", target, False, headers, tokens, Decimal(headers["x-llm-cost-usd"]))
    raw = client.messages.with_raw_response.create(
        model=HAIKU, max_tokens=64, messages=messages, stream=True
    )
    events = list(raw.parse())
    start = next(e for e in events if e.type == "message_start").message.usage
    delta = next(e for e in events if e.type == "message_delta").usage
    cost = Decimal(repr(delta.model_extra["cost"]))
    ledger.add(
        "anthropic", target, True, raw.headers, (start.input_tokens, delta.output_tokens), cost
    )


def test_counters_tokens_and_exact_cost_match_the_traffic(gateway, sim):
    ledger = Ledger()
    for _ in range(2):
        openai_plain(gateway, ledger, "gpt-4", ("gpt-4", "openai"))
    openai_plain(gateway, ledger, "claude-3.5-sonnet", (OPENAI_CLAUDE, "anthropic"))
    sim.sim.faults.push(Fault(kind="status", status=500))  # one retry, then success
    openai_plain(gateway, ledger, "gpt-4", ("gpt-4", "openai"))
    openai_stream(gateway, ledger)
    anthropic_calls(gateway, ledger)
    with pytest.raises(openai.NotFoundError):
        gateway.openai().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    ledger.requests[("openai", "", "", "false", "404", "model_not_found")] += 1
    samples = scrape(gateway.url)

    requests = {
        tuple(dict(labels)[k] for k in REQUEST_LABELS): count
        for labels, count in samples["llm_edge_requests_total"].items()
    }
    assert requests == dict(ledger.requests)
    for target, attempts in ledger.attempts.items():
        labels = dict(zip(("model", "provider"), target, strict=True))
        assert value(samples, "llm_edge_upstream_attempts_total", **labels) == attempts
        assert value(samples, "llm_edge_input_tokens_total", **labels) == ledger.tokens_in[target]
        assert value(samples, "llm_edge_output_tokens_total", **labels) == ledger.tokens_out[target]
        assert value(samples, "llm_edge_cached_tokens_total", **labels) == 0
        # Exact: the counter is the float nearest the exact Decimal sum of the cost headers.
        assert value(samples, "llm_edge_cost_usd_total", **labels) == float(ledger.cost[target])
    assert value(samples, "llm_edge_upstream_retries_total", model="gpt-4", provider="openai") == 1
    assert ledger.attempts[("gpt-4", "openai")] == 4
    assert sum(samples["llm_edge_cost_usd_total"].values()) == pytest.approx(
        float(sum(ledger.cost.values())), rel=1e-12
    )
    for (model, provider, stream), count in ledger.latencies.items():
        labels = {"model": model, "provider": provider, "stream": stream}
        assert value(samples, "llm_edge_request_duration_seconds_count", **labels) == count
    first_token = samples["llm_edge_time_to_first_token_seconds_count"]
    assert sum(first_token.values()) == 2  # the two streams
    overhead = samples["llm_edge_overhead_seconds_count"]
    assert overhead == {
        frozenset({("dialect", "openai")}): 5,
        frozenset({("dialect", "anthropic")}): 2,
    }


def test_state_gauges_circuits_and_reloads_read_at_scrape_time(gateway, sim):
    samples = scrape(gateway.url)
    assert value(samples, "llm_edge_in_flight_requests") == 0
    assert value(samples, "llm_edge_open_streams") == 0
    assert value(samples, "llm_edge_draining") == 0
    assert samples["llm_edge_circuit_state"] == {
        frozenset({("provider", name)}): 0 for name in gateway.config["providers"]
    }
    assert value(samples, "llm_edge_config_reloads_total", result="ok") == 0

    gateway.state.reload_failed("a test says so")
    gateway.server.call(_swap_same(gateway))
    samples = scrape(gateway.url)
    assert value(samples, "llm_edge_config_reloads_total", result="ok") == 1
    assert value(samples, "llm_edge_config_reloads_total", result="error") == 1


def _swap_same(gateway):
    async def swap() -> None:
        gateway.state.swap(gateway.state.snapshot)

    return swap


def test_open_stream_shows_in_the_gauges_while_it_runs(gateway, sim):
    sim.sim.configure(chunk_delay_ms=100, n_chunks=6)
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a slow story"}]
    )
    chunks = iter(stream)
    assert next(chunks).choices
    samples = scrape(gateway.url)
    assert value(samples, "llm_edge_in_flight_requests") == 1
    assert value(samples, "llm_edge_open_streams") == 1
    rest = list(chunks)
    assert rest[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("cooldown_s", "expected"), [(60, 2), (0, 1)], ids=["open", "half-open"])
def test_circuit_state_gauge(gateway_factory, sim, cooldown_s, expected):
    gateway = gateway_factory(
        {
            "retry": {"max_retries": 0},
            "breaker": {"failure_threshold": 1, "cooldown_s": cooldown_s},
        }
    )
    sim.sim.faults.push(Fault(kind="status", status=500))
    with pytest.raises(openai.InternalServerError):
        gateway.openai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    samples = scrape(gateway.url)
    assert value(samples, "llm_edge_circuit_state", provider="openai") == expected
    assert value(samples, "llm_edge_circuit_state", provider="anthropic") == 0
    errors = {
        dict(labels)["error_type"]: count
        for labels, count in samples["llm_edge_requests_total"].items()
    }
    assert errors == {"provider_error": 1}


def test_each_app_has_its_own_registry(gateway_factory):
    first, second = gateway_factory(), gateway_factory()
    first.anthropic().messages.create(
        model=HAIKU, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert sum(scrape(first.url)["llm_edge_requests_total"].values()) == 1
    assert "llm_edge_requests_total" not in scrape(second.url)


def test_overhead_buckets_resolve_below_a_millisecond(gateway):
    gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    buckets = {
        float(dict(labels)["le"])
        for labels in scrape(gateway.url)["llm_edge_overhead_seconds_bucket"]
    }
    assert {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01} <= buckets


def test_anthropic_error_is_counted_in_its_dialect(gateway, sim):
    with pytest.raises(anthropic.NotFoundError):
        gateway.anthropic().messages.create(
            model="claude-99", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    requests = scrape(gateway.url)["llm_edge_requests_total"]
    expected = {
        ("dialect", "anthropic"),
        ("model", ""),
        ("provider", ""),
        ("stream", "false"),
        ("status", "404"),
        ("error_type", "model_not_found"),
    }
    assert requests == {frozenset(expected): 1}
