"""Budgets shared by a fleet through a real Redis server (issue 17).

Two sidecars (two real ``llm-edge-agent serve`` processes) share one ``redis-server`` started
by the test. 50 concurrent requests split across both must never spend more than a hard cap
(the sum of the charged costs is checked exactly against the store); a soft cap stays within
its documented bound; a killed Redis shows the ``fail_open`` behaviour both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.engine.limits.estimate import from_nano, input_bound
from proxy.engine.limits.plan import worst_case
from proxy.pricing import Price
from proxy.sim.faults import Fault
from tests.conftest import Gateway, Process, SimHandle, gateway_config, wait_until
from tests.http import get
from tests.prom import samples
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)
from tests.sdk import openai_client

PROMPT = [{"role": "user", "content": "Count the coins in the shared budget."}]
GPT4 = Price(Decimal("0.030"), Decimal("0.060"))
MAX_TOKENS = 40
N = 50


def _limits(redis: RedisServer, usd: Decimal, mode: str, **extra: Any) -> dict[str, Any]:
    budget = {"name": "fleet", "usd": float(usd), "period": "month", "mode": mode}
    return {"backend": "redis", "redis_url": redis.url, "budgets": [budget], **extra}


def _one(url: str) -> tuple[int, Decimal]:
    client = openai_client(f"{url}/v1", "sk-client")
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=PROMPT, max_tokens=MAX_TOKENS
        )
    except openai.RateLimitError as exc:
        assert exc.response.headers["x-llm-error"] == "budget_exceeded"
        return 429, Decimal(0)
    return 200, Decimal(raw.headers["x-llm-cost-usd"])


def _burst(urls: list[str]) -> list[tuple[int, Decimal]]:
    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(_one, [urls[i % len(urls)] for i in range(N)]))


def _fleet_spend(url: str) -> Decimal:
    return Decimal(get(f"{url}/status").json()["limits"]["budgets"][0]["spent_usd"])


def _two_sidecars(
    sim: SimHandle, spawn_gateway: Callable[..., Process], tmp_path: Path, limits: dict[str, Any]
) -> list[str]:
    urls = []
    for i in range(2):
        directory = tmp_path / f"sidecar{i}"
        directory.mkdir()
        config = gateway_config(sim.url, directory, {"limits": limits})
        urls.append(spawn_gateway(config, "--no-watch").url)
    # Slow answers keep many requests in flight at once: the overshoot case.
    sim.sim.faults.push(*[Fault(kind="slow_headers", delay_ms=300)] * N)
    return urls


def _worst_case() -> Decimal:
    body = b'{"model":"gpt-4","messages":' + str(PROMPT).encode() + b',"max_tokens":40}'
    return from_nano(worst_case(GPT4, input_bound(body) + 64, MAX_TOKENS))


def test_two_sidecars_never_overshoot_a_hard_cap(
    sim: SimHandle,
    spawn_gateway: Callable[..., Process],
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    cap = Decimal("0.08")  # the worst case of only a few requests at once
    urls = _two_sidecars(sim, spawn_gateway, tmp_path, _limits(redis_server, cap, "hard"))
    results = _burst(urls)
    answered = [cost for status, cost in results if status == 200]
    assert 0 < len(answered) < N
    assert len(sim.completions()) == len(answered)  # every refusal stayed at the gateway
    wait_until(lambda: _fleet_spend(urls[0]) == sum(answered))  # exact, to the last digit
    assert sum(answered) <= cap  # zero overshoot
    assert _fleet_spend(urls[1]) == sum(answered)  # one budget for both sidecars
    reserved = get(f"{urls[1]}/status").json()["limits"]["budgets"][0]["reserved_usd"]
    assert reserved == "0"


def test_two_sidecars_soft_cap_stays_within_its_bound(
    sim: SimHandle,
    spawn_gateway: Callable[..., Process],
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    cap = Decimal("0.005")  # about three requests' actual cost
    urls = _two_sidecars(sim, spawn_gateway, tmp_path, _limits(redis_server, cap, "soft"))
    results = _burst(urls)
    answered = [cost for status, cost in results if status == 200]
    wait_until(lambda: _fleet_spend(urls[0]) == sum(answered))
    # The documented bound: the cap plus the worst case of every request in flight when
    # the cap was crossed (here at most all N were in flight at once).
    assert sum(answered) <= cap + N * _worst_case()
    assert sum(answered) >= cap  # soft admits while anything remained: the cap is used up
    assert _one(urls[1])[0] == 429  # and now it refuses, fleet-wide
    assert _one(urls[0])[0] == 429


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_killed_fails_open_or_closed_then_recovers(
    gateway_factory: Callable[..., Gateway],
    sim: SimHandle,
    redis_server: RedisServer,  # noqa: F811
    fail_open: bool,
) -> None:
    limits = _limits(redis_server, Decimal(1), "hard", fail_open=fail_open)
    gateway = gateway_factory({"limits": limits})
    client = gateway.openai()
    assert _one(gateway.url)[0] == 200
    redis_server.kill()
    if fail_open:
        assert _one(gateway.url)[0] == 200  # not enforced, but served
    else:
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model="gpt-4", messages=PROMPT, max_tokens=5)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["x-llm-error"] == "unavailable"
    assert "unreachable" in get(f"{gateway.url}/status").json()["limits"]["error"]
    metrics = samples(get(f"{gateway.url}/metrics").text)
    assert metrics[("llm_edge_limits_unenforced_total", frozenset())] >= 1
    redis_server.start()  # same port, empty: enforced again without a restart of the gateway
    status, cost = _one(gateway.url)
    assert status == 200
    wait_until(lambda: _fleet_spend(gateway.url) == cost)
