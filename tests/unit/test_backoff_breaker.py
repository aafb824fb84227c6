import random

import pytest

from proxy.config.snapshot import BreakerSettings, RetryPolicy
from proxy.engine.backoff import backoff_s, retry_after_s
from proxy.engine.breaker import Breaker, State


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
