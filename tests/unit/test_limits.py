"""Budgets and rate limits, piece by piece: windows, bounds, and both stores' semantics
(the Redis store against a real ``redis-server``), and the config checks (issue 17)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.build import check, load_snapshot
from proxy.config.loader import ConfigError
from proxy.engine.limits.estimate import (
    FALLBACK_MAX_OUTPUT,
    input_bound,
    output_bound,
    to_nano,
    usd_text,
)
from proxy.engine.limits.plan import worst_case
from proxy.engine.limits.redis_store import RedisStore
from proxy.engine.limits.store import CHECK, COUNT, RESERVE, Charge, MemoryStore, Op
from proxy.engine.limits.windows import retry_after, window
from proxy.pricing import Price, format_usd
from tests.redis_server import RedisServer


def ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def test_windows_are_utc_calendar_periods() -> None:
    now = ts(2026, 12, 31, 23, 59, 30) + 0.25
    assert window("minute", now) == (ts(2026, 12, 31, 23, 59), ts(2027, 1, 1))
    assert window("hour", now) == (ts(2026, 12, 31, 23), ts(2027, 1, 1))
    assert window("day", now) == (ts(2026, 12, 31), ts(2027, 1, 1))
    assert window("month", now) == (ts(2026, 12, 1), ts(2027, 1, 1))
    assert window("month", ts(2028, 2, 29, 12)) == (ts(2028, 2, 1), ts(2028, 3, 1))


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after(100.0, 97.25) == 3
    assert retry_after(100.0, 97.0) == 3
    assert retry_after(100.0, 99.999) == 1
    assert retry_after(100.0, 100.0) == 1  # never 0: "now" is already the next window


def test_nano_dollar_conversions_are_exact() -> None:
    """The remaining header's text is format_usd's, computed without Decimal; a charge is
    the cost rounded up to whole nano-dollars, never down."""
    for nano in (0, 1, 10, 999_999_999, 10**9, 10**9 + 1, 1_500_000_000, 123_456_789_012_345,
                 999_999_999_999_300_000, 10**21 + 7):  # fmt: skip
        assert usd_text(nano) == format_usd(Decimal(nano) / 10**9)
    assert to_nano(Decimal("0.0007")) == 700_000
    assert to_nano(Decimal("0.0000000001")) == 1
    assert to_nano(Decimal("12.3456789015")) == 12_345_678_902
    assert to_nano(Decimal(0)) == 0


def test_input_bound_is_bytes_plus_overhead_and_url_images() -> None:
    raw = b'{"messages":[{"role":"user","content":"hi"}]}'
    assert input_bound(raw) == len(raw) + 512
    image = b'{"messages":[{"content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}'
    assert input_bound(image) == len(image) + 512 + 50_000


def test_output_bound_prefers_the_request_then_the_gateway_default(tmp_path: Path) -> None:
    from proxy.config.snapshot import ModelConfig

    model = ModelConfig("m", "p", "m", Price(Decimal(1), Decimal(1)), max_tokens=1000)
    assert output_bound({"max_tokens": 7}, model, anthropic_wire=False) == 7
    assert output_bound({"max_completion_tokens": 9, "max_tokens": 7}, model, False) == 9
    assert output_bound({"max_tokens": 7, "n": 3}, model, False) == 21
    assert output_bound({}, model, anthropic_wire=True) == 1000
    assert output_bound({}, model, anthropic_wire=False) == FALLBACK_MAX_OUTPUT
    from dataclasses import replace

    from proxy.capabilities.model import Capabilities

    known = replace(model, capabilities=Capabilities(max_output_tokens=16_384))
    assert output_bound({}, known, anthropic_wire=False) == 16_384
    assert output_bound({"n": 2}, known, anthropic_wire=False) == 32_768


def test_worst_case_uses_the_highest_input_price_and_rounds_up() -> None:
    price = Price(Decimal("0.003"), Decimal("0.015"), Decimal("0.0003"), Decimal("0.00375"))
    # 1000 in at the cache-write price 0.00375 + 100 out at 0.015 = 0.00525 USD.
    assert worst_case(price, 1000, 100) == 5_250_000
    assert worst_case(Price(Decimal("0.0000001"), Decimal(0)), 1, 0) == 1  # rounded up
    long = Price(Decimal("0.0025"), Decimal("0.015"))
    tiered = Price(Decimal("0.00125"), Decimal("0.010"), tiers=((200_000, long),))
    assert worst_case(tiered, 200_000, 1000) == 200_000 * 1250 + 1000 * 10_000
    assert worst_case(tiered, 200_001, 1000) == 200_001 * 2500 + 1000 * 15_000  # the tier
    assert to_nano(Decimal("0.000000001")) == 1 and to_nano(Decimal("1.5")) == 1_500_000_000


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server = RedisServer().start()
    try:
        yield RedisStore(server.url, 1.0, "test")
    finally:
        server.stop()


T = float(int(time.time()))
"""Store times are epoch seconds near now: Redis expires keys by its own clock."""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_reserve_then_settle_is_all_or_nothing(store: Any) -> None:
    async def go() -> None:
        ops = [Op("b:a", 100, 60, RESERVE, T + 1000.0), Op("b:b", 100, 30, RESERVE, T + 1000.0)]
        first = await store.admit(ops, "h1", T + 500.0, T + 10.0)
        assert first.ok and first.spent == [0, 0]
        second = await store.admit(
            ops, "h2", T + 500.0, T + 10.0
        )  # a needs 60 of 40 left: none held
        assert not second.ok and second.refused == [0]
        assert await store.read(["b:a", "b:b"], T + 10.0) == [(0, 60), (0, 30)]
        charges = [Charge("b:a", 60, 25, T + 1000.0), Charge("b:b", 30, 25, T + 1000.0)]
        assert await store.settle(charges, "h1", T + 11.0) == [25, 25]
        assert await store.read(["b:a", "b:b"], T + 11.0) == [(25, 0), (25, 0)]
        assert (await store.admit(ops, "h3", T + 500.0, T + 12.0)).ok
        await store.close()

    run(go())


def test_a_refusal_leaves_the_counters_that_fit_untouched(store: Any) -> None:
    """The memory store applies each op as it fits and undoes them when a later one does not:
    the outcome must be the same as checking everything first (as the Lua script does)."""

    async def go() -> None:
        ops = [
            Op("b:fits", 100, 40, RESERVE, T + 1000.0),
            Op("r:n:requests:0", 5, 1, COUNT, T + 60.0),
            Op("b:soft", 100, 0, CHECK, T + 1000.0),
            Op("b:full", 100, 70, RESERVE, T + 1000.0),
        ]
        await store.settle([Charge("b:full", 0, 50, T + 1000.0)], "x", T + 1.0)
        refused = await store.admit(ops, "h1", T + 500.0, T + 2.0)
        assert not refused.ok and list(refused.refused) == [3]
        assert refused.spent == [0, 0, 0, 50]
        keys = ["b:fits", "r:n:requests:0", "b:soft", "b:full"]
        assert await store.read(keys, T + 3.0) == [(0, 0), (0, 0), (0, 0), (50, 0)]
        admitted = await store.admit(ops[:3], "h2", T + 500.0, T + 4.0)
        assert admitted.ok and admitted.spent == [0, 1, 0]
        assert await store.read(keys[:2], T + 5.0) == [(0, 40), (1, 0)]
        await store.close()

    run(go())


def test_holds_expire_so_a_dead_request_frees_its_reservation(store: Any) -> None:
    async def go() -> None:
        op = [Op("b:crash", 100, 80, RESERVE, T + 10_000.0)]
        assert (await store.admit(op, "dead", T + 50.0, T + 10.0)).ok  # never settles
        assert not (await store.admit(op, "live", T + 90.0, T + 20.0)).ok
        assert (await store.admit(op, "live", T + 90.0, T + 50.0)).ok  # the hold expired at 50
        assert await store.read(["b:crash"], T + 51.0) == [(0, 80)]
        # A settle after its own hold expired still charges what was spent.
        assert await store.settle([Charge("b:crash", 80, 70, T + 10_000.0)], "dead", T + 52.0) == [
            70
        ]
        assert await store.read(["b:crash"], T + 52.0) == [(70, 80)]
        await store.close()

    run(go())


def test_soft_check_and_request_counting(store: Any) -> None:
    async def go() -> None:
        soft = [Op("b:soft", 100, 0, CHECK, T + 1000.0)]
        assert (await store.admit(soft, "s1", T + 500.0, T + 1.0)).ok
        await store.settle([Charge("b:soft", 0, 150, T + 1000.0)], "s1", T + 2.0)  # overshoots
        refused = await store.admit(soft, "s2", T + 500.0, T + 3.0)
        assert not refused.ok and refused.spent == [150]
        rpm = [Op("r:rpm:requests:0", 2, 1, COUNT, T + 60.0)]
        counts = [await store.admit(rpm, f"r{i}", T + 500.0, T + 1.0) for i in range(3)]
        assert [(a.ok, a.spent) for a in counts] == [(True, [1]), (True, [2]), (False, [2])]
        await store.close()

    run(go())


def _config(tmp_path: Path, limits: dict[str, Any]) -> Path:
    data = {
        "providers": {"openai": {"type": "openai", "base_url": "http://x/v1", "api_key": "k"}},
        "models": {"gpt-4": {"provider": "openai", "aliases": ["g4"], "price": {
            "input_per_1k": 0.03, "output_per_1k": 0.06}}},
        "limits": limits,
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_builds_exact_limits(tmp_path: Path) -> None:
    limits = {
        "budgets": [{"name": "d", "usd": 0.1, "models": ["g4"], "tokens_env": ["T"]}],
        "rate_limits": [{"name": "r", "requests_per_minute": 5}],
    }
    snapshot = load_snapshot(_config(tmp_path, limits), environ={"T": "secret-token"})
    budget = snapshot.limits.budgets[0]
    assert budget.usd == Decimal("0.1") and budget.mode == "hard" and budget.period == "day"
    assert budget.scope.models == frozenset({"gpt-4"})
    assert "secret-token" not in repr(snapshot.limits)
    assert snapshot.limits.token_scoped and snapshot.limits.enabled


def test_token_scoped_limits_without_inbound_auth_are_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T", "secret-token")
    limits = {"budgets": [{"name": "d", "usd": 1, "tokens_env": ["T"]}]}
    problems, warnings = check(_config(tmp_path, limits))
    assert problems == [] and len(warnings) == 1
    assert "limits.budgets[0].tokens_env" in warnings[0] and "server.auth is off" in warnings[0]
    with_auth = yaml.safe_load(_config(tmp_path, limits).read_text())
    with_auth["server"] = {"auth": {"tokens_env": ["T"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(with_auth))
    assert check(tmp_path / "c.yaml") == ([], [])


def test_config_problems_name_the_path(tmp_path: Path) -> None:
    limits = {
        "backend": "redis",
        "budgets": [
            {"name": "d", "usd": 1, "models": ["nope"], "period": "week"},
            {"name": "d", "usd": 1, "providers": ["azure"], "tokens_env": ["UNSET_VAR"]},
        ],
        "rate_limits": [{"name": "r"}],
    }
    with pytest.raises(ConfigError) as error:
        load_snapshot(_config(tmp_path, limits), environ={})
    text = str(error.value)
    assert "limits.backend: backend redis needs a redis_url" in text
    assert "limits.budgets[0].models[0]: 'nope' is not a configured model" in text
    assert "limits.budgets[0].period: must be one of" in text
    assert "limits.budgets[1].name: name 'd' is used twice" in text
    assert "limits.budgets[1].providers[0]: 'azure' is not a configured provider" in text
    assert "environment variable UNSET_VAR is not set" in text
    assert "limits.rate_limits[0]: needs requests_per_minute or tokens_per_minute" in text
