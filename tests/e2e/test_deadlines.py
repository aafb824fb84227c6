"""Deadlines: ``request_ms`` bounds the whole request (attempts, backoffs, slow headers, slow
bodies, streams), a client's shorter ``x-llm-timeout-ms`` is honoured, ``connect_ms`` bounds
a connect, and no upstream attempt starts after the deadline.

The faults here would take 5 s or more; the bound checked is the budget plus a generous
tolerance, so the assertions say "the deadline held", not "the gateway is fast".
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from proxy.sim.faults import Fault
from tests.conftest import wait_until

HELLO = [{"role": "user", "content": "hello"}]
BUDGET_S = 0.8
TOLERANCE_S = 1.5  # generous for a loaded machine, still far below the faults' 5 s
SLOW_MS = 5000
POLICY: dict[str, Any] = {
    "retry": {"max_retries": 3, "initial_backoff_ms": 100, "max_backoff_ms": 1000},
    "timeouts": {"request_ms": int(BUDGET_S * 1000)},
    "breaker": {"enabled": False},
}


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(POLICY)


def timed_error(gateway, **kwargs: Any) -> tuple[openai.APIStatusError, float, float]:
    """The error of a gpt-4o request, when it was sent and how long it took (monotonic)."""
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, **kwargs)
    return caught.value, started, time.monotonic() - started


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="slow_headers", delay_ms=SLOW_MS),
        Fault(kind="slow_body", delay_ms=SLOW_MS),
        Fault(kind="hang"),
    ],
    ids=["slow-headers", "slow-body", "hang"],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_upstream_gets_a_504_at_the_deadline(gateway, sim, fault, stream):
    sim.sim.faults.push(*[fault] * 5)
    error, _, elapsed = timed_error(gateway, stream=stream)
    assert error.status_code == 504
    assert error.body["type"] == "timeout"
    assert error.response.headers["x-llm-attempts"] == "1"
    assert elapsed < BUDGET_S + TOLERANCE_S
    assert len(sim.completions()) == 1
    sim.sim.faults.clear()


def test_backoffs_never_carry_a_request_past_its_deadline(gateway_factory, sim):
    retry = {"max_retries": 10, "initial_backoff_ms": 150, "max_backoff_ms": 5000, "jitter": 0}
    policy = {**POLICY, "retry": retry}
    gateway = gateway_factory(policy)
    sim.sim.faults.push(*[Fault(kind="status", status=503)] * 11)
    error, started, elapsed = timed_error(gateway)
    assert error.status_code == 502  # the upstream's own error, not a vague timeout
    attempts = sim.completions()
    # 150 + 300 ms of backoff fit in 800 ms, the next 600 ms would not: stop at once
    assert len(attempts) == 3
    assert error.response.headers["x-llm-attempts"] == "3"
    assert all(record.t < started + BUDGET_S for record in attempts)
    assert elapsed < BUDGET_S + TOLERANCE_S


def test_client_deadline_header_shortens_the_budget(gateway_factory, sim):
    gateway = gateway_factory({**POLICY, "timeouts": {"request_ms": 20000}})
    sim.sim.faults.push(Fault(kind="slow_headers", delay_ms=SLOW_MS))
    error, _, elapsed = timed_error(gateway, extra_headers={"x-llm-timeout-ms": "300"})
    assert error.status_code == 504
    assert elapsed < 0.3 + TOLERANCE_S


def test_client_deadline_header_cannot_extend_the_budget(gateway, sim):
    sim.sim.faults.push(Fault(kind="slow_headers", delay_ms=SLOW_MS))
    error, _, elapsed = timed_error(gateway, extra_headers={"x-llm-timeout-ms": "60000"})
    assert error.status_code == 504
    assert elapsed < BUDGET_S + TOLERANCE_S


def test_a_bad_client_deadline_header_is_a_400(gateway, sim):
    error, _, _ = timed_error(gateway, extra_headers={"x-llm-timeout-ms": "soon"})
    assert error.status_code == 400
    assert error.body["param"] == "x-llm-timeout-ms"
    assert sim.completions() == []


def test_a_client_deadline_never_counts_against_the_provider(gateway_factory, sim):
    """Impatient clients must not open the breaker for everyone else."""
    gateway = gateway_factory(
        {**POLICY, "timeouts": {"request_ms": 20000}, "breaker": {"failure_threshold": 1}}
    )
    for _ in range(3):
        sim.sim.faults.push(Fault(kind="slow_headers", delay_ms=SLOW_MS))
        error, _, _ = timed_error(gateway, extra_headers={"x-llm-timeout-ms": "150"})
        assert error.status_code == 504
    assert gateway.state.breakers.states()["openai"] == "closed"
    reply = gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO)
    assert reply.choices[0].message.content


def test_a_stream_slower_than_the_deadline_ends_with_a_timeout_event(gateway, sim):
    sim.sim.faults.push(Fault(kind="ok", chunk_delay_ms=300, n_chunks=20))
    started = time.monotonic()
    stream = gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="deadline"):
        for chunk in stream:
            received.append(chunk)
    assert received  # the stream had begun: an error event, not an HTTP error
    assert time.monotonic() - started < BUDGET_S + TOLERANCE_S


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A listening port whose accept queue is full, so a new connect hangs (SYN dropped)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            fillers.append(client)
        yield port
    finally:
        for client in fillers:
            client.close()
        server.close()


def test_connect_timeout_bounds_each_connect(gateway_factory, sim):
    with unanswered_port() as port:
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            pass  # the queue is full: connects hang, as the test needs
        else:
            pytest.skip("this kernel accepts connects past a full backlog")
        finally:
            probe.close()
        gateway = gateway_factory(
            {
                **POLICY,
                "providers": {"openai": {"base_url": f"http://127.0.0.1:{port}/v1"}},
                "retry": {"max_retries": 1, "initial_backoff_ms": 10},
                "timeouts": {"connect_ms": 150, "request_ms": 5000},
            }
        )
        error, _, elapsed = timed_error(gateway)
    assert error.status_code == 504
    assert error.body["type"] == "timeout"
    assert error.response.headers["x-llm-attempts"] == "2"
    assert elapsed < 2 * 0.15 + TOLERANCE_S + 0.5  # two connects of 150 ms, not 5 s


def test_nothing_is_left_running_after_deadlines(gateway, sim):
    for fault in (Fault(kind="hang"), Fault(kind="slow_body", delay_ms=SLOW_MS)):
        sim.sim.faults.push(fault)
        timed_error(gateway, stream=True)
    wait_until(lambda: gateway.state.in_flight == 0 and gateway.state.streams_open == 0)
    # the gateway hung up on the hanging upstream (a slow_body fault sleeps on regardless)
    wait_until(lambda: sim.completions()[0].done and sim.completions()[0].disconnected)
