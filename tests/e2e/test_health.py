"""/health/providers: concurrent active checks, each bounded by its timeout; results feed the
circuit breaker; an optional background interval keeps recent results."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from proxy.sim.faults import Fault
from tests.conftest import wait_until
from tests.http import get

TIMEOUT_MS = 300
TOLERANCE_S = 1.0


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel does) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def dead_port() -> int:
    """A port nobody listens on (bound, never listening: connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def providers_health(gateway) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    reply = get(f"{gateway.url}/health/providers")
    return reply.status_code, orjson.loads(reply.content), time.monotonic() - started


def circuit(gateway, provider: str) -> str:
    return gateway.state.breakers.states().get(provider, "closed")


def pointed_at(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"openai": {"base_url": f"http://127.0.0.1:{port}/v1"}},
        "health_check": {"timeout_ms": TIMEOUT_MS},
        **extra,
    }


def test_every_provider_healthy(gateway, sim):
    status, body, _ = providers_health(gateway)
    assert status == 200
    assert set(body) == set(gateway.config["providers"])  # every configured vendor type
    for result in body.values():
        assert result["healthy"] is True and result["error"] is None
        assert result["response_time_ms"] >= 0
    assert "/v1/models" in {r.path for r in sim.sim.received}
    assert not sim.completions()  # a health check generates nothing


def test_a_refusing_provider_is_unhealthy_the_other_healthy(gateway_factory, sim):
    gateway = gateway_factory(pointed_at(dead_port()))
    status, body, _ = providers_health(gateway)
    assert status == 503
    assert body["openai"]["healthy"] is False
    assert "connect" in body["openai"]["error"].lower()
    assert body["anthropic"] == {**body["anthropic"], "healthy": True, "error": None}


def test_a_hanging_provider_is_unhealthy_within_its_timeout(gateway_factory, sim):
    with silent_server() as port:
        gateway = gateway_factory(pointed_at(port))
        status, body, elapsed = providers_health(gateway)
    assert status == 503
    assert body["openai"]["healthy"] is False
    assert body["openai"]["error"] == f"no answer within {TIMEOUT_MS} ms"
    assert TIMEOUT_MS * 0.9 <= body["openai"]["response_time_ms"] < TIMEOUT_MS + 1000
    assert body["anthropic"]["healthy"] is True
    assert elapsed < TIMEOUT_MS / 1000 + TOLERANCE_S  # checked concurrently, bounded


def test_an_upstream_5xx_on_the_check_is_unhealthy(gateway_factory, sim):
    gateway = gateway_factory({"health_check": {"timeout_ms": TIMEOUT_MS}})
    sim.sim.faults.push(*[Fault(kind="status", status=503, path="/v1/models")] * 2)
    status, body, _ = providers_health(gateway)
    assert status == 503
    assert not body["openai"]["healthy"] and not body["anthropic"]["healthy"]
    assert "HTTP 503" in body["openai"]["error"]


def test_a_dead_provider_check_counts_against_its_breaker(gateway_factory, sim):
    gateway = gateway_factory(pointed_at(dead_port(), breaker={"failure_threshold": 1}))
    providers_health(gateway)
    assert circuit(gateway, "openai") == "open"
    assert circuit(gateway, "anthropic") == "closed"


def test_a_rejected_key_is_unhealthy_but_never_trips_the_breaker(gateway_factory, sim):
    gateway = gateway_factory(
        {"breaker": {"failure_threshold": 1}}, environ={"OPENAI_API_KEY": "sk-wrong-key"}
    )
    status, body, _ = providers_health(gateway)
    assert status == 503
    assert body["openai"]["error"] == "invalid_api_key (HTTP 401)"
    assert circuit(gateway, "openai") == "closed"


def test_a_passing_check_half_opens_an_open_circuit(gateway_factory, sim):
    gateway = gateway_factory(
        {"retry": {"max_retries": 0}, "breaker": {"failure_threshold": 1, "cooldown_s": 600}}
    )
    sim.sim.faults.push(Fault(kind="status", status=500, path="/v1/chat/completions"))
    reply = gateway.openai().chat.completions.with_raw_response
    with pytest.raises(openai.InternalServerError):  # the 502 that opens the circuit
        reply.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert circuit(gateway, "openai") == "open"
    providers_health(gateway)
    assert circuit(gateway, "openai") == "half_open"  # probes still decide
    raw = reply.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-llm-attempts"] == "1"
    assert circuit(gateway, "openai") == "closed"


def test_background_checks_keep_a_recent_result(gateway_factory, sim):
    gateway = gateway_factory({"health_check": {"interval_s": 30}})
    providers = set(gateway.config["providers"])
    wait_until(lambda: set(gateway.state.health) == providers)
    checks = len(sim.sim.received)
    assert checks == len(providers)
    status, body, _ = providers_health(gateway)
    assert status == 200 and body["openai"]["healthy"]
    assert len(sim.sim.received) == checks  # answered from the background result


def test_background_checks_follow_their_interval(gateway_factory, sim):
    gateway = gateway_factory(pointed_at(dead_port(), health_check={"interval_s": 0.2}))
    wait_until(lambda: len([r for r in sim.sim.received if r.path == "/v1/models"]) >= 3)
    assert not gateway.state.health["openai"].healthy
    assert gateway.state.health["anthropic"].healthy
