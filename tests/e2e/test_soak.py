"""Pool hygiene under faults: thousands of requests, a fifth of them hitting an upstream fault,
some clients hanging up mid-request, and the gateway ends with the file descriptors and sockets
it started with; its upstream connections never exceed the pools' limits.

The gateway is the real CLI in its own process (production settings: uvloop, handlers
cancelled when the client leaves), so ``/proc/<pid>/fd`` counts only the gateway's own.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.demo import shipped_models
from proxy.sim.app import Sim
from proxy.sim.app import create_app as create_sim_app
from proxy.sim.faults import Fault
from proxy.sim.runner import BackgroundServer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, SimHandle, gateway_config, wait_until
from tests.http import get

REQUESTS = 5000
CONCURRENCY = 32
FAULT_RATE = 0.2
DISCONNECT_RATE = 0.1
LIMITS = {"openai": 6, "anthropic": 4}  # pool.max_connections per provider
OVERRIDES: dict[str, Any] = {
    "retry": {"max_retries": 2, "initial_backoff_ms": 1, "max_backoff_ms": 5},
    "timeouts": {"request_ms": 1000, "first_byte_ms": 300},
    "pool": {"max_idle_per_host": 4, "idle_timeout_s": 0.5},
    "breaker": {"failure_threshold": 25, "cooldown_s": 0.05},
    "providers": {name: {"pool": {"max_connections": n}} for name, n in LIMITS.items()},
    "server": {"logging": {"access_log": False}},
}
FAULTS = [
    Fault(kind="reset"),
    Fault(kind="status", status=500),
    Fault(kind="status", status=502),
    Fault(kind="status", status=503),
    Fault(kind="status", status=529),
    Fault(kind="status", status=429, headers={"retry-after-ms": "2"}),
    Fault(kind="status", status=400),
    Fault(kind="slow_headers", delay_ms=30),
    Fault(kind="slow_body", delay_ms=30),
    Fault(kind="stream_cut", after_events=0),
    Fault(kind="stream_cut", after_events=3),
    Fault(kind="stream_error", after_events=2),
    Fault(kind="invalid_json"),
    Fault(kind="wrong_content_type"),
    Fault(kind="hang"),
    Fault(kind="ok", chunk_delay_ms=150),  # a stream outliving its deadline (cut at 1 s)
]
MODELS = {"openai": ["gpt-4o", "gpt-4o-mini", "claude-3.5-haiku"], "anthropic": ["claude-3-haiku"]}


def fds(pid: int) -> tuple[int, set[int]]:
    """(open descriptors, inodes of the open sockets) of process ``pid``."""
    count, sockets = 0, set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        count += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            sockets.add(int(target[8:-1]))
    return count, sockets


def connections_to(port: int) -> dict[int, int]:
    """Established IPv4 TCP connections whose remote end is ``port``: inode -> 1."""
    out = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] == "01":
                out[int(fields[9])] = 1
    return out


@contextmanager
def sampling(pid: int, upstream_port: int) -> Iterator[list[int]]:
    """The gateway's upstream connection count, sampled every 20 ms in a thread."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            try:
                _, sockets = fds(pid)
            except FileNotFoundError:
                return
            samples.append(len(sockets & connections_to(upstream_port).keys()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def request_for(rng: random.Random, n: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    dialect = rng.choice(["openai", "openai", "anthropic"])
    model = rng.choice(MODELS[dialect])
    messages = [{"role": "user", "content": f"soak request {n}"}]
    stream = rng.random() < 0.4
    headers = {"x-request-id": f"soak-{n}"}
    if rng.random() < 0.05:
        headers["x-llm-timeout-ms"] = "300"
    if dialect == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 16}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return "/v1/chat/completions", body, headers
    headers["anthropic-version"] = "2023-06-01"
    body = {"model": model, "messages": messages, "max_tokens": 16, "stream": stream}
    return "/v1/messages", body, headers


async def one(session: aiohttp.ClientSession, url: str, rng: random.Random, n: int) -> str:
    """Send request ``n``; returns its outcome (status, or how the client hung up)."""
    path, body, headers = request_for(rng, n)
    hang_up = rng.random() < DISCONNECT_RATE
    send = session.post(url + path, data=orjson.dumps(body), headers=headers)
    if hang_up and not body.get("stream"):
        try:
            async with asyncio.timeout(rng.uniform(0.001, 0.03)):
                async with send as response:
                    await response.read()
                    return str(response.status)
        except TimeoutError:
            return "hung up"
    async with send as response:
        if hang_up:  # a stream the client abandons after its first bytes
            await response.content.readany()
            response.close()
            return "hung up"
        await response.read()
        return str(response.status)


async def soak(url: str, sim, rng: random.Random) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    counter = iter(range(REQUESTS))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            if rng.random() < FAULT_RATE:
                sim.sim.faults.push(rng.choice(FAULTS))
            outcomes[await one(session, url, rng, n)] += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return outcomes


def status(url: str) -> dict[str, Any]:
    return orjson.loads(get(f"{url}/status").content)


@pytest.fixture
def fast_sim() -> Iterator[SimHandle]:
    """The fake vendor without per-request schema validation (the other tests do that): the
    soak measures the gateway, not jsonschema."""
    simulator = Sim(
        openai_key=OPENAI_KEY,
        anthropic_key=ANTHROPIC_KEY,
        validate=False,
        extra_models=shipped_models(),
        chunk_delay_ms=2,  # streams last long enough for clients to abandon them midway
    )
    with BackgroundServer(lambda: create_sim_app(simulator)) as server:
        yield SimHandle(simulator, server)


@pytest.mark.timeout(120)
def test_soak_with_faults_and_disconnects_leaks_nothing(fast_sim, spawn_gateway, tmp_path):
    sim = fast_sim
    gateway = spawn_gateway(gateway_config(sim.url, tmp_path, OVERRIDES))
    pid = gateway.popen.pid
    upstream_port = int(sim.url.rsplit(":", 1)[1])
    start_fds, start_sockets = fds(pid)

    with sampling(pid, upstream_port) as samples:
        outcomes = asyncio.run(soak(gateway.url, sim, random.Random(4)))
    sim.sim.faults.clear()

    assert sum(outcomes.values()) == REQUESTS
    assert set(outcomes) <= {"200", "400", "429", "502", "504", "hung up"}, outcomes
    assert outcomes["200"] > REQUESTS * 0.6, outcomes  # most faults were retried away
    assert outcomes["hung up"] > REQUESTS * DISCONNECT_RATE / 2, outcomes
    assert samples and max(samples) <= sum(LIMITS.values()), max(samples)

    wait_until(lambda: status(gateway.url)["in_flight"] == 0, timeout=10)
    assert status(gateway.url)["streams_open"] == 0

    def settled() -> bool:  # idle pooled connections expire after idle_timeout_s
        count, sockets = fds(pid)
        return count <= start_fds and len(sockets) <= len(start_sockets)

    wait_until(settled, timeout=20, interval=0.1)
    assert gateway.popen.poll() is None


def test_each_provider_pool_caps_its_connections(gateway_factory, sim):
    """12 slow requests at once through a pool of 3: the upstream never sees more than 3."""
    gateway = gateway_factory({"providers": {"openai": {"pool": {"max_connections": 3}}}})
    sim.sim.faults.push(*[Fault(kind="slow_headers", delay_ms=150)] * 12)
    in_flight: list[int] = []

    def busy() -> bool:
        records = sim.completions()
        in_flight.append(sum(1 for r in records if not r.done))
        return len(records) == 12 and all(r.done for r in records)

    def ask() -> None:
        gateway.openai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    wait_until(busy, timeout=20, interval=0.005)
    for thread in threads:
        thread.join(10)
    assert max(in_flight) == 3
