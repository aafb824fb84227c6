import random

import pytest

from proxy.config.snapshot import BreakerSettings, RetryPolicy
from proxy.engine.backoff import asked_wait_s, backoff_s, parse_retry_after, retry_after_s
from proxy.engine.breaker import Breaker, Breakers, State
from proxy.errors import ErrorType, GatewayError


def test_backoff_doubles_from_initial_and_caps():
    policy = RetryPolicy(initial_backoff_ms=100, max_backoff_ms=500, jitter=0)
    assert [backoff_s(policy, n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_backoff_jitter_is_proportional_and_bounded():
    policy = RetryPolicy(initial_backoff_ms=100, jitter=0.1)
    rng = random.Random(7)
    delays = [backoff_s(policy, 2, rng) for _ in range(200)]
    assert min(delays) >= 0.18 and max(delays) <= 0.22
    assert len(set(delays)) > 100


def test_retry_after_forms_and_cap():
    assert retry_after_s({"retry-after": "3"}, 30000) == 3
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "3"}, 30000) == 0.25
    assert retry_after_s({"retry-after": "120"}, 5000) == 5
    assert retry_after_s({"retry-after": "soon"}, 5000) is None
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 5000) == 0
    assert retry_after_s(None, 5000) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_fails_fast_half_opens_and_closes():
    clock = Clock()
    breaker = Breaker(
        BreakerSettings(failure_threshold=3, cooldown_s=10, half_open_probes=1), clock
    )
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is State.OPEN and not breaker.allow()
    clock.now = 10
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.record_success()
    assert breaker.state is State.CLOSED and breaker.allow()


def test_breaker_probe_failure_reopens():
    clock = Clock()
    breaker = Breaker(BreakerSettings(failure_threshold=1, cooldown_s=5), clock)
    breaker.record_failure()
    clock.now = 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is State.OPEN
    clock.now = 9
    assert not breaker.allow()


def test_breaker_failure_rate_in_window():
    clock = Clock()
    breaker = Breaker(
        BreakerSettings(failure_threshold=100, failure_rate=0.5, min_requests=4, window_s=10), clock
    )
    breaker.record_success()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is State.CLOSED
    breaker.record_failure()  # 2 of 4 failed
    assert breaker.state is State.OPEN


def test_breaker_disabled_never_opens():
    breaker = Breaker(BreakerSettings(enabled=False, failure_threshold=1))
    for _ in range(5):
        breaker.record_failure()
    assert breaker.allow() and breaker.state is State.CLOSED


def test_backoff_jitter_never_exceeds_the_cap():
    policy = RetryPolicy(initial_backoff_ms=100, max_backoff_ms=400, jitter=0.5)
    rng = random.Random(3)
    assert max(backoff_s(policy, 5, rng) for _ in range(200)) <= 0.4


def test_backoff_survives_absurd_retry_counts():
    assert backoff_s(RetryPolicy(max_backoff_ms=5000, jitter=0), 5000) == 5


def test_parse_retry_after_is_uncapped_and_reads_the_error():
    assert parse_retry_after({"retry-after": "120"}) == 120
    assert parse_retry_after({"retry-after-ms": "nan", "retry-after": "2"}) == 2
    assert parse_retry_after({"retry-after": "-3"}) == 0
    error = GatewayError(ErrorType.RATE_LIMIT_EXCEEDED, "slow down", retry_after_ms="40")
    assert asked_wait_s(error) == pytest.approx(0.04)
    assert asked_wait_s(GatewayError(ErrorType.PROVIDER_ERROR, "x")) is None


def tripped(clock: Clock, **settings: object) -> Breaker:
    breaker = Breaker(BreakerSettings(failure_threshold=1, cooldown_s=5, **settings), clock)
    breaker.record_failure()
    assert breaker.state is State.OPEN
    return breaker


def test_breaker_needs_every_half_open_probe_to_succeed():
    clock = Clock()
    breaker = tripped(clock, half_open_probes=2)
    clock.now = 5
    assert breaker.allow() and breaker.allow() and not breaker.allow()
    breaker.record_success()
    assert breaker.state is State.HALF_OPEN
    breaker.record_success()
    assert breaker.state is State.CLOSED


def test_breaker_ignores_stragglers_while_open():
    """Outcomes of requests let through before it opened neither close nor re-open it."""
    clock = Clock()
    breaker = tripped(clock)
    clock.now = 2
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is State.OPEN
    assert breaker.retry_in() == 3  # the cooldown was not extended
    assert breaker.transitions_to[State.OPEN] == 1


def test_breaker_released_probe_frees_its_slot_only_in_its_own_half_open_period():
    clock = Clock()
    breaker = tripped(clock)
    clock.now = 5
    assert breaker.allow()
    epoch = breaker.transitions
    breaker.release_probe(epoch)
    assert breaker.allow()  # the slot came back
    breaker.record_failure()  # re-opens; a later half-open period starts afresh
    clock.now = 10
    assert breaker.allow()
    breaker.release_probe(epoch)  # a stale release changes nothing
    assert not breaker.allow()


def test_breaker_health_checks_fail_it_and_end_its_cooldown_early():
    clock = Clock()
    breaker = Breaker(BreakerSettings(failure_threshold=2, cooldown_s=60), clock)
    breaker.record_health(False)
    breaker.record_health(False)
    assert breaker.state is State.OPEN
    breaker.record_health(True)
    assert breaker.state is State.HALF_OPEN  # probes still decide
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is State.CLOSED


def test_breakers_report_states_and_transition_counts():
    breakers = Breakers()
    settings = BreakerSettings(failure_threshold=1)
    breakers.get("a", settings).record_failure()
    breakers.get("b", settings)
    assert breakers.states() == {"a": "open", "b": "closed"}
    counts = breakers.transitions()
    assert counts[("a", "open")] == 1 and counts[("b", "open")] == 0


def test_breakers_follow_reloads():
    from proxy.config.snapshot import ProviderConfig
    from proxy.engine.breaker import Breakers

    settings = BreakerSettings(failure_threshold=1)
    breakers = Breakers()
    a = ProviderConfig("a", "openai", "http://one")
    b = ProviderConfig("b", "openai", "http://two")
    breakers.sync({"a": a, "b": b})
    breakers.get("a", settings).record_failure()
    breakers.get("b", settings).record_failure()
    assert breakers.states() == {"a": "open", "b": "open"}
    moved = ProviderConfig("a", "openai", "http://elsewhere")
    breakers.sync({"a": moved, "b": b})  # a points elsewhere now: fresh breaker
    assert breakers.states() == {"b": "open"}
    assert breakers.get("a", settings).state is State.CLOSED
    breakers.sync({"a": moved})  # b removed
    assert "b" not in breakers.states()
