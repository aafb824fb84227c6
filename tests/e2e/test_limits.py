"""Budgets and rate limits end to end, through the official SDKs (issue 17).

Each test runs the real gateway in-process against the fake vendors; its limits clock is
replaced by a settable one, so period resets are tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.conftest import Gateway, SimHandle
from tests.http import get

NOON = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC).timestamp()
PROMPT = [{"role": "user", "content": "Say hello to the budget."}]


class Clock:
    """The limits' clock, moved by the test."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limited(
    gateway_factory: Callable[..., Gateway], limits: dict[str, Any], **overrides: Any
) -> tuple[Gateway, Clock]:
    gateway = gateway_factory({"limits": limits, **overrides})
    clock = Clock()
    gateway.state.limits.clock = clock
    return gateway, clock


def chat(gateway: Gateway, model: str = "gpt-4", **extra: Any) -> Any:
    return gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=PROMPT, max_tokens=50, **extra
    )


def message(gateway: Gateway, model: str = "claude-3-haiku-20240307", **extra: Any) -> Any:
    return gateway.anthropic().messages.with_raw_response.create(
        model=model, messages=PROMPT, max_tokens=50, **extra
    )


def cost_of(raw: Any) -> Decimal:
    return Decimal(raw.headers["x-llm-cost-usd"])


def probe_cost(gateway_factory: Callable[..., Gateway], call: Callable[[Gateway], Any]) -> Decimal:
    """What one request costs, measured on a gateway without limits (the sim is deterministic)."""
    return cost_of(call(gateway_factory()))


def remaining(raw: Any) -> Decimal:
    return Decimal(raw.headers["x-llm-budget-remaining-usd"])


def status(gateway: Gateway) -> dict[str, Any]:
    return get(f"{gateway.url}/status").json()


def spent(gateway: Gateway, name: str) -> Decimal:
    budgets = status(gateway)["limits"]["budgets"]
    return Decimal(next(b for b in budgets if b["name"] == name)["spent_usd"])


def test_soft_budget_used_up_exactly_then_429_without_upstream_call(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    cost = probe_cost(gateway_factory, chat)
    budget = {"name": "daily", "usd": float(cost * 3), "period": "day", "mode": "soft"}
    gateway, clock = limited(gateway_factory, {"budgets": [budget]})
    clock.now = datetime(2026, 12, 3, 23, 59, 57, 250000, tzinfo=UTC).timestamp()
    seen = [remaining(chat(gateway)) for _ in range(3)]
    assert seen == [cost * 2, cost, Decimal(0)]  # exact: Decimal, no float drift
    before = len(sim.completions())
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gateway)
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["x-llm-error"] == "budget_exceeded"
    assert response.headers["retry-after"] == "3"  # 2.75 s to midnight UTC, rounded up
    error = response.json()["error"]
    assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
    assert "'daily'" in error["message"]
    assert len(sim.completions()) == before  # never sent upstream
    assert spent(gateway, "daily") == cost * 3
