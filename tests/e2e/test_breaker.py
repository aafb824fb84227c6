"""The circuit breaker end to end: opens on provider failures, fails fast, half-opens after its
cooldown with limited probes, closes on success; client errors never trip it; /status shows it.
"""

from __future__ import annotations

import threading
from typing import Any

import openai
import orjson
import pytest

from proxy.sim.faults import Fault
from tests.conftest import wait_until
from tests.http import get
from tests.prom import samples

HELLO = [{"role": "user", "content": "hello"}]
COOLDOWN_S = 1.5  # long enough that a loaded machine never reaches half-open by accident


def breaker_policy(**breaker: Any) -> dict[str, Any]:
    settings = {"failure_threshold": 3, "cooldown_s": COOLDOWN_S, **breaker}
    return {
        "retry": {"max_retries": 0},
        "providers": {"openai": {"breaker": settings}},
    }


def circuit(gateway, provider: str = "openai") -> str:
    return orjson.loads(get(f"{gateway.url}/status").content)["providers"][provider]["circuit"]


def ask(gateway, **kwargs: Any) -> Any:
    return gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, **kwargs
    )


def refused(gateway, **kwargs: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gateway, **kwargs)
    return caught.value


def trip(gateway, sim, failures: int = 3) -> None:
    for _ in range(failures):
        sim.sim.faults.push(Fault(kind="status", status=500))
        assert refused(gateway).status_code == 502
    assert circuit(gateway) == "open"


def test_opens_fails_fast_half_opens_and_closes(gateway_factory, sim):
    gateway = gateway_factory(breaker_policy())
    assert circuit(gateway) == "closed"
    trip(gateway, sim)
    sent = len(sim.completions())
    fast = refused(gateway)
    assert fast.status_code == 502
    assert fast.body["type"] == "provider_error" and fast.body["code"] == "circuit_open"
    assert fast.response.headers["x-llm-attempts"] == "0"
    assert int(fast.response.headers["retry-after"]) >= 1
    assert len(sim.completions()) == sent  # failed fast: the upstream saw nothing
    assert circuit(gateway, "anthropic") == "closed"  # per provider
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    probe = ask(gateway)
    assert probe.headers["x-llm-attempts"] == "1"
    assert circuit(gateway) == "closed"
    assert ask(gateway).parse().choices[0].message.content
    transitions = gateway.state.breakers.transitions()
    assert transitions[("openai", "open")] == 1
    assert transitions[("openai", "half_open")] == 1
    assert transitions[("openai", "closed")] == 1


def test_a_failed_probe_opens_it_again(gateway_factory, sim):
    gateway = gateway_factory(breaker_policy())
    trip(gateway, sim)
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    sim.sim.faults.push(Fault(kind="reset"))
    assert refused(gateway).body["type"] == "http_error"
    assert circuit(gateway) == "open"
    assert refused(gateway).body["code"] == "circuit_open"


def test_half_open_lets_only_its_probes_through(gateway_factory, sim):
    gateway = gateway_factory(breaker_policy(half_open_probes=1))
    trip(gateway, sim)
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    sim.sim.faults.push(Fault(kind="slow_headers", delay_ms=1500))
    results: list[Any] = []
    probe = threading.Thread(target=lambda: results.append(ask(gateway)))
    probe.start()
    sim.sim.wait_for(lambda records: len(records) == 4)  # the probe reached the upstream
    assert refused(gateway).body["code"] == "circuit_open"  # a second request is refused
    probe.join(10)
    assert results and results[0].headers["x-llm-attempts"] == "1"
    assert circuit(gateway) == "closed"


def test_it_closes_only_once_every_probe_succeeded(gateway_factory, sim):
    gateway = gateway_factory(breaker_policy(half_open_probes=2))
    trip(gateway, sim)
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    ask(gateway)
    assert circuit(gateway) == "half_open"
    ask(gateway)
    assert circuit(gateway) == "closed"


def test_a_probe_without_a_verdict_gives_its_slot_back(gateway_factory, sim):
    """A probe cut short by the client's own deadline says nothing about the provider."""
    gateway = gateway_factory(breaker_policy(half_open_probes=1))
    trip(gateway, sim)
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    sim.sim.faults.push(Fault(kind="slow_headers", delay_ms=3000))
    assert refused(gateway, extra_headers={"x-llm-timeout-ms": "100"}).status_code == 504
    assert circuit(gateway) == "half_open"
    assert ask(gateway).headers["x-llm-attempts"] == "1"  # the slot was free again
    assert circuit(gateway) == "closed"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_and_key_errors_never_open_it(gateway_factory, sim, status):
    """LiteLLM once put its only deployment in cooldown after one 401; not here."""
    gateway = gateway_factory(breaker_policy(failure_threshold=1))
    for _ in range(3):
        sim.sim.faults.push(Fault(kind="status", status=status))
        refused(gateway)
    assert circuit(gateway) == "closed"
    raw = ask(gateway)
    assert raw.parse().choices[0].message.content


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="reset"),
        Fault(kind="status", status=429, headers={"retry-after": "0"}),
        Fault(kind="status", status=503),
        Fault(kind="invalid_json"),
    ],
    ids=["reset", "429", "503", "invalid-json"],
)
def test_provider_side_failures_open_it(gateway_factory, sim, fault):
    gateway = gateway_factory(breaker_policy(failure_threshold=2))
    sim.sim.faults.push(fault, fault)
    refused(gateway)
    assert circuit(gateway) == "closed"
    refused(gateway)
    assert circuit(gateway) == "open"


def test_failure_rate_in_the_window_opens_it(gateway_factory, sim):
    gateway = gateway_factory(
        breaker_policy(failure_threshold=100, failure_rate=0.5, min_requests=4, window_s=60)
    )
    for n in range(4):
        if n % 2:
            sim.sim.faults.push(Fault(kind="status", status=500))
            refused(gateway)
        else:
            ask(gateway)
    assert circuit(gateway) == "open"


def test_a_call_stops_retrying_once_its_circuit_opened_meanwhile(gateway_factory, sim):
    """Another verdict (here a failed health check) opens the circuit while a call waits to
    retry: the call stops there and reports what the upstream said, not ``circuit_open``."""
    policy = breaker_policy(failure_threshold=1)
    policy["retry"] = {"max_retries": 3, "initial_backoff_ms": 3000, "max_backoff_ms": 3000}
    gateway = gateway_factory(policy)
    sim.sim.faults.push(Fault(kind="status", status=500, path="/v1/chat/completions"))
    sim.sim.faults.push(*[Fault(kind="status", status=503, path="/v1/models")] * 2)
    errors: list[openai.APIStatusError] = []
    call = threading.Thread(target=lambda: errors.append(refused(gateway)))
    call.start()
    wait_until(lambda: [r for r in sim.completions() if r.done], timeout=5)
    assert circuit(gateway) == "closed"  # one failed attempt is no verdict yet
    get(f"{gateway.url}/health/providers")
    assert circuit(gateway) == "open"
    call.join(15)
    (error,) = errors
    assert error.response.headers["x-llm-attempts"] == "1"
    assert error.body["code"] != "circuit_open"  # the client learns what the upstream said
    assert len(sim.completions()) == 1


def test_disabled_breaker_never_opens(gateway_factory, sim):
    gateway = gateway_factory(breaker_policy(enabled=False, failure_threshold=1))
    for _ in range(3):
        sim.sim.faults.push(Fault(kind="status", status=500))
        refused(gateway)
    assert circuit(gateway) == "closed"


# --- the breaker judges requests, not attempts -------------------------------------------------

PATTERN = ((500, 500), (529,), (500,))  # failed attempts before each request's success
WINDOW = {"failure_threshold": 3, "failure_rate": 0.5, "min_requests": 10, "window_s": 600}
TARGETS = {"gpt-4o": "openai", "claude-3.5-sonnet": "anthropic"}


def judged_by_requests(provider: str, max_retries: int) -> dict[str, Any]:
    return {
        "retry": {"max_retries": max_retries, "initial_backoff_ms": 1, "max_backoff_ms": 2},
        "providers": {provider: {"breaker": {**WINDOW, "cooldown_s": 600}}},
    }


def outcomes(gateway, provider: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for (name, labels), count in samples(get(f"{gateway.url}/metrics").text).items():
        labels = dict(labels)
        if name == "llm_edge_upstream_attempt_outcomes_total" and labels["provider"] == provider:
            found[labels["outcome"]] = found.get(labels["outcome"], 0) + count
    return found


@pytest.mark.parametrize("model", TARGETS)
def test_requests_that_succeed_within_their_retries_never_open_it(gateway_factory, sim, model):
    """57% of attempts fail, two in a row at most, every request succeeds: the circuit stays
    closed (judging attempts, it would open after the fourth request)."""
    provider = TARGETS[model]
    gateway = gateway_factory(judged_by_requests(provider, max_retries=2))
    for _ in range(30):
        for statuses in PATTERN:
            sim.sim.faults.push(*[Fault(kind="status", status=s) for s in statuses])
            raw = gateway.openai().chat.completions.with_raw_response.create(
                model=model, messages=HELLO
            )
            assert raw.headers["x-llm-attempts"] == str(len(statuses) + 1)
            assert raw.parse().choices[0].message.content
        assert circuit(gateway, provider) == "closed"
    assert gateway.state.breakers.transitions()[(provider, "open")] == 0
    assert len(sim.completions()) == 30 * 7
    # the failed attempts are in the metrics, not in the breaker
    assert outcomes(gateway, provider) == {"success": 90, "provider_error": 120}
    attempts = samples(get(f"{gateway.url}/metrics").text)
    total = sum(
        count
        for (name, labels), count in attempts.items()
        if name == "llm_edge_upstream_attempts_total" and dict(labels)["provider"] == provider
    )
    assert total == 210


@pytest.mark.parametrize("model", TARGETS)
def test_a_provider_down_for_every_attempt_opens_after_threshold_requests(
    gateway_factory, sim, model
):
    provider = TARGETS[model]
    gateway = gateway_factory(judged_by_requests(provider, max_retries=2))
    client = gateway.openai().chat.completions
    for n in range(WINDOW["failure_threshold"]):
        assert circuit(gateway, provider) == "closed", n  # 3 failed attempts: one verdict
        sim.sim.faults.push(*[Fault(kind="status", status=500)] * 3)
        with pytest.raises(openai.APIStatusError) as caught:
            client.create(model=model, messages=HELLO)
        assert caught.value.response.headers["x-llm-attempts"] == "3"
    assert circuit(gateway, provider) == "open"
    with pytest.raises(openai.APIStatusError) as caught:
        client.create(model=model, messages=HELLO)
    assert caught.value.body["code"] == "circuit_open"
    assert caught.value.response.headers["x-llm-attempts"] == "0"
    assert len(sim.completions()) == 9
    assert outcomes(gateway, provider) == {"provider_error": 9}


def test_a_probe_request_that_succeeds_on_retry_closes_it(gateway_factory, sim):
    policy = breaker_policy(failure_threshold=1)
    policy["retry"] = {"max_retries": 1, "initial_backoff_ms": 1}
    gateway = gateway_factory(policy)
    sim.sim.faults.push(*[Fault(kind="status", status=500)] * 2)
    assert refused(gateway).response.headers["x-llm-attempts"] == "2"
    assert circuit(gateway) == "open"  # two failed attempts, one failed request
    wait_until(lambda: circuit(gateway) == "half_open", timeout=5)
    sim.sim.faults.push(Fault(kind="status", status=500))
    probe = ask(gateway)
    assert probe.headers["x-llm-attempts"] == "2"
    assert circuit(gateway) == "closed"
