"""Budgets and rate limits end to end, through the official SDKs (issue 17).

Each test runs the real gateway in-process against the fake vendors; its limits clock is
replaced by a settable one, so period resets are tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.conftest import Gateway, SimHandle, wait_until
from tests.http import get
from tests.prom import samples
from tests.sdk import openai_client

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
    extra.setdefault("max_tokens", 50)
    return gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=PROMPT, **extra
    )


def message(gateway: Gateway, model: str = "claude-3-haiku-20240307", **extra: Any) -> Any:
    extra.setdefault("max_tokens", 50)
    return gateway.anthropic().messages.with_raw_response.create(
        model=model, messages=PROMPT, **extra
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
    metrics = samples(get(f"{gateway.url}/metrics").text)
    rejected = ("llm_edge_limit_rejections_total", frozenset({("limit", "daily"), ("unit", "usd")}))
    assert metrics[rejected] == 1
    assert metrics[("llm_edge_budget_remaining_usd", frozenset({("budget", "daily")}))] == 0


def test_hard_budget_remaining_decreases_exactly_then_refuses_anthropic(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    cost = probe_cost(gateway_factory, message)
    # Room for the worst case of the third request, not of a fourth (reserve, then settle).
    limit = cost * 3 + Decimal("0.01")
    budget = {"name": "haiku-hourly", "usd": float(limit), "period": "hour"}
    gateway, clock = limited(gateway_factory, {"budgets": [budget]})
    seen = [remaining(message(gateway)) for _ in range(3)]
    assert seen == [limit - cost, limit - 2 * cost, limit - 3 * cost]
    before = len(sim.completions())
    with pytest.raises(anthropic.RateLimitError) as refused:
        message(gateway, max_tokens=10_000)  # worst case > 10,000 x $0.00125/1k > what is left
    response = refused.value.response
    assert response.headers["x-llm-error"] == "budget_exceeded"
    assert response.headers["retry-after"] == "3600"  # noon: a whole hour to the next window
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "'haiku-hourly'" in body["error"]["message"]
    assert len(sim.completions()) == before
    assert spent(gateway, "haiku-hourly") == cost * 3
    clock.now += 3600  # the next hour: the whole budget again, no sleep
    assert remaining(message(gateway, max_tokens=7_000)) == limit - cost


def test_streams_are_charged_at_their_end_both_dialects(
    gateway_factory: Callable[..., Gateway],
) -> None:
    budget = {"name": "all", "usd": 10, "period": "month"}
    gateway, _ = limited(gateway_factory, {"budgets": [budget]})
    with gateway.openai().chat.completions.with_streaming_response.create(
        model="gpt-4",
        messages=PROMPT,
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        assert Decimal(stream.headers["x-llm-budget-remaining-usd"]) == Decimal(10)  # before
        chunks = list(stream.parse())
    first = Decimal(str(chunks[-1].usage.cost))
    wait_until(lambda: spent(gateway, "all") == first)
    with gateway.anthropic().messages.with_streaming_response.create(
        model="claude-3-haiku-20240307", messages=PROMPT, max_tokens=50, stream=True
    ) as stream:
        assert Decimal(stream.headers["x-llm-budget-remaining-usd"]) == 10 - first
        events = list(stream.parse())
    second = Decimal(str(next(e for e in events if e.type == "message_delta").usage.cost))
    wait_until(lambda: spent(gateway, "all") == first + second)
    assert status(gateway)["limits"]["budgets"][0]["reserved_usd"] == "0"


def test_scoped_budgets_only_block_their_scope(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    budgets = [
        {"name": "gpt4-none", "usd": 0, "models": ["gpt4"]},  # an alias names the model
        {"name": "anthropic-some", "usd": 1, "providers": ["anthropic"]},
    ]
    gateway, _ = limited(gateway_factory, {"budgets": budgets})
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gateway, model="gpt-4")
    assert "'gpt4-none'" in refused.value.response.json()["error"]["message"]
    ok = chat(gateway, model="gpt-4-turbo")  # same provider, another model: not in scope
    assert "x-llm-budget-remaining-usd" not in ok.headers  # no budget covers it
    claude = message(gateway)
    assert remaining(claude) == 1 - cost_of(claude)
    assert [r.model for r in sim.completions()] == ["gpt-4-turbo", "claude-3-haiku-20240307"]


def test_token_scoped_budget_applies_to_that_inbound_token_only(
    gateway_factory: Callable[..., Gateway],
) -> None:
    environ = {"TEAM_A": "tok-team-a", "TEAM_B": "tok-team-b"}
    overrides = {"server": {"auth": {"tokens_env": ["TEAM_A", "TEAM_B"]}}}
    limits = {"budgets": [{"name": "team-a", "usd": 0, "tokens_env": ["TEAM_A"]}]}
    gateway = gateway_factory({"limits": limits, **overrides}, environ=environ)
    base = f"{gateway.url}/v1"
    team_a = openai_client(base, "tok-team-a")
    team_b = openai_client(base, "tok-team-b")
    with pytest.raises(openai.RateLimitError):
        team_a.chat.completions.create(model="gpt-4", messages=PROMPT, max_tokens=5)
    assert team_b.chat.completions.create(model="gpt-4", messages=PROMPT, max_tokens=5).choices


def test_requests_per_minute_then_the_next_minute(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    rate = {"name": "gpt4-rpm", "models": ["gpt-4"], "requests_per_minute": 2}
    gateway, clock = limited(gateway_factory, {"rate_limits": [rate]})
    clock.now = NOON + 59.2
    left = [chat(gateway).headers["x-ratelimit-remaining-requests"] for _ in range(2)]
    assert left == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gateway)
    assert refused.value.response.headers["retry-after"] == "1"  # 0.8 s, rounded up
    assert "'gpt4-rpm'" in refused.value.response.json()["error"]["message"]
    assert len(sim.completions()) == 2
    clock.now = NOON + 60
    assert chat(gateway).headers["x-ratelimit-remaining-requests"] == "1"


def test_tokens_per_minute_counts_usage(gateway_factory: Callable[..., Gateway]) -> None:
    rate = {"name": "claude-tpm", "providers": ["anthropic"], "tokens_per_minute": 30}
    gateway, clock = limited(gateway_factory, {"rate_limits": [rate]})
    first = message(gateway)
    used = int(first.headers["x-llm-input-tokens"]) + int(first.headers["x-llm-output-tokens"])
    assert used < 30
    assert first.headers["x-ratelimit-remaining-tokens"] == str(30 - used)
    while True:  # admitted while the minute's tokens are under the limit
        try:
            message(gateway)
        except anthropic.RateLimitError as exc:
            assert exc.response.headers["x-llm-error"] == "budget_exceeded"
            break
    clock.now += 60
    assert message(gateway).headers["x-ratelimit-remaining-tokens"] == str(30 - used)


def test_fallback_answer_is_charged_to_the_model_that_answered(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    from proxy.sim.faults import Fault

    budgets = [
        {"name": "mini", "usd": 1, "models": ["gpt-4o-mini"]},
        {"name": "haiku", "usd": 1, "models": ["claude-3-5-haiku-20241022"]},
    ]
    gateway, _ = limited(gateway_factory, {"budgets": budgets}, retry={"max_retries": 0})
    sim.sim.faults.push(Fault(kind="status", status=500, path="/v1/chat/completions"))
    answered = chat(gateway, model="gpt-4o-mini")
    assert answered.headers["x-llm-provider"] == "anthropic"
    assert spent(gateway, "haiku") == cost_of(answered)
    assert spent(gateway, "mini") == 0
    assert status(gateway)["limits"]["budgets"][0]["reserved_usd"] == "0"


def test_fallback_whose_budget_is_spent_is_skipped(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    from proxy.sim.faults import Fault

    budgets = [{"name": "haiku", "usd": 0, "models": ["claude-3-5-haiku-20241022"]}]
    gateway, _ = limited(gateway_factory, {"budgets": budgets}, retry={"max_retries": 0})
    sim.sim.faults.push(Fault(kind="status", status=500, path="/v1/chat/completions"))
    with pytest.raises(openai.InternalServerError):
        chat(gateway, model="gpt-4o-mini")  # the primary failed; the fallback may not spend
    assert [r.path for r in sim.completions()] == ["/v1/chat/completions"]


def test_reload_keeps_the_spend_of_the_same_budget_name(
    gateway_factory: Callable[..., Gateway],
) -> None:
    import yaml

    from proxy.config.build import load_snapshot
    from tests.conftest import ENVIRON

    gateway, _ = limited(gateway_factory, {"budgets": [{"name": "b", "usd": 1}]})
    cost = cost_of(chat(gateway))
    config = yaml.safe_load(gateway.config_path.read_text())
    config["limits"]["budgets"] = [{"name": "b", "usd": 2}, {"name": "new", "usd": 1}]
    gateway.config_path.write_text(yaml.safe_dump(config))
    gateway.state.swap(load_snapshot(gateway.config_path, environ=ENVIRON))
    assert spent(gateway, "b") == cost and spent(gateway, "new") == 0
    assert remaining(chat(gateway)) == 1 - cost  # "new" is now the lowest
    assert spent(gateway, "b") == 2 * cost


def test_failed_request_releases_its_reservation(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    from proxy.sim.faults import Fault

    gateway, _ = limited(
        gateway_factory,
        {"budgets": [{"name": "b", "usd": 1}]},
        retry={"max_retries": 0},
    )
    sim.sim.faults.push(Fault(kind="status", status=400, path="/v1/chat/completions"))
    with pytest.raises(openai.BadRequestError):
        chat(gateway)
    budget = status(gateway)["limits"]["budgets"][0]
    wait_until(lambda: status(gateway)["limits"]["budgets"][0]["reserved_usd"] == "0")
    assert budget["spent_usd"] == "0"


def test_status_metrics_and_cli_show_the_budgets(
    gateway_factory: Callable[..., Gateway], capsys: pytest.CaptureFixture[str]
) -> None:
    from proxy.cli import main

    limits = {
        "budgets": [{"name": "daily", "usd": 5, "period": "day"}],
        "rate_limits": [{"name": "rpm", "requests_per_minute": 100}],
    }
    gateway, _ = limited(gateway_factory, limits)
    cost = cost_of(chat(gateway))
    budget = status(gateway)["limits"]["budgets"][0]
    assert budget == {
        "name": "daily",
        "period": "day",
        "mode": "hard",
        "limit_usd": "5",
        "spent_usd": str(cost),
        "reserved_usd": "0",
        "remaining_usd": str(5 - cost),
        "resets_at": "2026-12-04T00:00:00Z",
    }
    assert main(["budgets", "--url", gateway.url]) == 0
    out = capsys.readouterr().out
    assert "daily" in out and str(5 - cost) in out and "rpm" in out
    metrics = samples(get(f"{gateway.url}/metrics").text)
    assert metrics[("llm_edge_budget_spend_usd", frozenset({("budget", "daily")}))] == float(cost)


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_without_usage_is_charged_its_reservation(
    gateway_factory: Callable[..., Gateway], sim: SimHandle, stream: bool
) -> None:
    from proxy.engine.limits.estimate import from_nano, input_bound
    from proxy.engine.limits.plan import worst_case
    from proxy.sim.faults import Fault
    from tests.http import post

    gateway, _ = limited(gateway_factory, {"budgets": [{"name": "b", "usd": 1}]})
    sim.sim.faults.push(Fault(kind="no_usage"))
    raw = orjson.dumps({"model": "gpt-4", "messages": PROMPT, "max_tokens": 50, "stream": stream})
    reply = post(f"{gateway.url}/v1/chat/completions", raw)
    assert reply.status_code == 200 and "x-llm-cost-usd" not in reply.headers
    price = gateway.state.snapshot.models["gpt-4"].price
    reserved = from_nano(worst_case(price, input_bound(raw), 50))
    wait_until(lambda: spent(gateway, "b") == reserved)  # unknown is never free


def test_a_stream_cut_by_the_client_is_charged(
    gateway_factory: Callable[..., Gateway], sim: SimHandle
) -> None:
    """Cut before the upstream's usage arrived: charged the reservation, nothing held after."""
    sim.sim.configure(chunk_delay_ms=200, n_chunks=20)
    gateway, _ = limited(gateway_factory, {"budgets": [{"name": "b", "usd": 1}]})
    with gateway.anthropic().messages.with_streaming_response.create(
        model="claude-3-haiku-20240307", messages=PROMPT, max_tokens=50, stream=True
    ) as stream:
        next(iter(stream.iter_bytes()))  # the first event, then the client hangs up
    wait_until(lambda: spent(gateway, "b") > 0, timeout=10)
    budget = status(gateway)["limits"]["budgets"][0]
    assert budget["reserved_usd"] == "0"


def test_answers_and_refusals_conform_to_the_openapi_document(
    gateway_factory: Callable[..., Gateway],
) -> None:
    from tests.e2e.test_openapi_conformance import conform
    from tests.http import post

    limits = {
        "budgets": [
            {"name": "gpt", "usd": 0.0001, "mode": "soft", "models": ["gpt-4"]},
            {"name": "opus", "usd": 0.0001, "mode": "soft", "models": ["claude-3-opus"]},
        ],
        "rate_limits": [{"name": "rpm", "requests_per_minute": 100, "tokens_per_minute": 10**6}],
    }
    gateway, _ = limited(gateway_factory, limits)
    for path, body in (
        ("/v1/chat/completions", {"model": "gpt-4", "messages": PROMPT, "max_tokens": 50}),
        ("/v1/messages", {"model": "claude-3-opus", "messages": PROMPT, "max_tokens": 50}),
    ):
        answered = post(f"{gateway.url}{path}", orjson.dumps(body))
        assert answered.status_code == 200
        assert answered.headers["x-ratelimit-remaining-tokens"]
        conform(path, "post", answered)
        refused = post(f"{gateway.url}{path}", orjson.dumps(body))  # the soft cap is used up
        assert refused.status_code == 429
        conform(path, "post", refused)
    conform("/status", "get", get(f"{gateway.url}/status"))


def test_responses_dialect_is_limited_too(gateway_factory: Callable[..., Gateway]) -> None:
    gateway, _ = limited(gateway_factory, {"budgets": [{"name": "r", "usd": 1, "mode": "soft"}]})
    client = gateway.openai()
    raw = client.responses.with_raw_response.create(
        model="gpt-4", input="Say hello to the budget.", max_output_tokens=50
    )
    assert remaining(raw) == 1 - cost_of(raw)
    assert spent(gateway, "r") == cost_of(raw)
