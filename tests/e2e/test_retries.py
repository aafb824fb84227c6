"""Retries, fault by fault: what the client gets, how many attempts, and the waits between them.

Waits are measured from the fake upstream's own receive timestamps. Lower bounds are the
policy's (minus its jitter); upper bounds are loose, so a loaded machine does not flake.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import anthropic
import openai
import pytest

from proxy.sim.faults import Fault

HELLO = [{"role": "user", "content": "hello"}]
MAX_RETRIES = 2
INITIAL_S = 0.1
JITTER = 0.1
SLACK_S = 1.0  # generous upper tolerance on any measured wait
POLICY: dict[str, Any] = {
    "retry": {
        "max_retries": MAX_RETRIES,
        "initial_backoff_ms": int(INITIAL_S * 1000),
        "max_backoff_ms": 1000,
        "jitter": JITTER,
        "max_retry_after_ms": 3000,
    },
    "timeouts": {"request_ms": 10000},
    "breaker": {"enabled": False},  # these tests fail a provider many times on purpose
}


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(POLICY)


def gaps(sim) -> list[float]:
    """Seconds between consecutive upstream requests, by the fake's clock."""
    times = [r.t for r in sim.completions()]
    return [b - a for a, b in pairwise(times)]


def assert_backoff(sim, attempts: int) -> None:
    """``attempts`` upstream requests, waits ~100 ms then ~200 ms apart (+/- jitter)."""
    measured = gaps(sim)
    assert len(measured) == attempts - 1
    for n, gap in enumerate(measured):
        base = INITIAL_S * 2**n
        assert base * (1 - JITTER) - 0.005 <= gap <= base * (1 + JITTER) + SLACK_S, measured


def openai_error(gateway, model: str = "gpt-4o", **kwargs: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model=model, messages=HELLO, **kwargs)
    return caught.value


def push(sim, fault: Fault, times: int = MAX_RETRIES + 1) -> None:
    sim.sim.faults.push(*[fault] * times)


# --- retryable faults, every attempt failing ---------------------------------------------------

RETRYABLE = [
    (Fault(kind="reset"), 502, "http_error"),
    (Fault(kind="status", status=500), 502, "provider_error"),
    (Fault(kind="status", status=502), 502, "provider_error"),
    (Fault(kind="status", status=503), 502, "provider_error"),
    (Fault(kind="stream_cut"), 502, "http_error"),  # a JSON body cut in half
    (Fault(kind="invalid_json"), 502, "provider_error"),
    (Fault(kind="wrong_content_type"), 502, "provider_error"),
]


@pytest.mark.parametrize(("fault", "status", "kind"), RETRYABLE, ids=lambda v: str(v)[:40])
def test_retryable_fault_is_retried_with_backoff_then_reported(gateway, sim, fault, status, kind):
    push(sim, fault)
    error = openai_error(gateway)
    assert error.status_code == status
    assert error.body["type"] == kind
    assert error.response.headers["x-llm-error"] == kind
    assert error.response.headers["x-llm-attempts"] == str(MAX_RETRIES + 1)
    assert error.response.headers["x-should-retry"] == "false"
    assert_backoff(sim, MAX_RETRIES + 1)


@pytest.mark.parametrize(("fault", "status", "kind"), RETRYABLE, ids=lambda v: str(v)[:40])
def test_retryable_fault_once_then_success(gateway, sim, fault, status, kind):
    sim.sim.faults.push(fault)
    raw = gateway.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-llm-attempts"] == "2"
    assert_backoff(sim, 2)


def test_anthropic_529_overloaded_is_retried_and_keeps_its_type(gateway, sim):
    push(sim, Fault(kind="status", status=529))
    with pytest.raises(anthropic.APIStatusError) as caught:
        gateway.anthropic().messages.create(
            model="claude-3.5-sonnet", max_tokens=20, messages=HELLO
        )
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert caught.value.response.headers["x-llm-error"] == "provider_error"
    assert caught.value.response.headers["x-llm-attempts"] == "3"
    assert_backoff(sim, 3)


def test_anthropic_529_then_success(gateway, sim):
    sim.sim.faults.push(Fault(kind="status", status=529))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3.5-sonnet", max_tokens=20, messages=HELLO
    )
    assert raw.parse().content[0].text
    assert raw.headers["x-llm-attempts"] == "2"
    assert_backoff(sim, 2)


# --- retry-after -------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_waited_instead_of_the_backoff(gateway, sim):
    sim.sim.faults.push(Fault(kind="status", status=429, headers={"retry-after": "1"}))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3.5-sonnet", max_tokens=20, messages=HELLO
    )
    assert raw.headers["x-llm-attempts"] == "2"
    (gap,) = gaps(sim)
    assert 1.0 - 0.005 <= gap <= 1.0 + SLACK_S


def test_429_retry_after_ms_wins_over_retry_after(gateway, sim):
    headers = {"retry-after-ms": "400", "retry-after": "2"}
    sim.sim.faults.push(Fault(kind="status", status=429, headers=headers))
    raw = gateway.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.headers["x-llm-attempts"] == "2"
    (gap,) = gaps(sim)
    assert 0.4 - 0.005 <= gap < 2.0


def test_429_after_retries_passes_retry_after_on(gateway, sim):
    push(sim, Fault(kind="status", status=429, headers={"retry-after-ms": "150"}))
    error = openai_error(gateway)
    assert error.status_code == 429
    assert error.body["type"] == "rate_limit_exceeded"
    assert error.response.headers["retry-after-ms"] == "150"
    assert error.response.headers["retry-after"] == "3"  # the kit sample's own value
    assert error.response.headers["x-llm-attempts"] == "3"
    assert all(0.15 - 0.005 <= gap <= 0.15 + SLACK_S for gap in gaps(sim))


def test_503_retry_after_is_honoured_too(gateway, sim):
    sim.sim.faults.push(Fault(kind="status", status=503, headers={"retry-after-ms": "350"}))
    raw = gateway.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.headers["x-llm-attempts"] == "2"
    assert 0.35 - 0.005 <= gaps(sim)[0] <= 0.35 + SLACK_S


def test_anthropic_529_retry_after_ms_is_honoured(gateway, sim):
    sim.sim.faults.push(Fault(kind="status", status=529, headers={"retry-after-ms": "300"}))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3.5-sonnet", max_tokens=20, messages=HELLO
    )
    assert raw.headers["x-llm-attempts"] == "2"
    assert 0.3 - 0.005 <= gaps(sim)[0] <= 0.3 + SLACK_S


def test_retry_after_beyond_the_cap_ends_retries_at_once(gateway, sim):
    """max_retry_after_ms is 3 s: an upstream asking for 60 s gets its 429 passed on now."""
    push(sim, Fault(kind="status", status=429, headers={"retry-after": "60"}))
    error = openai_error(gateway)
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "60"
    assert error.response.headers["x-llm-attempts"] == "1"
    assert len(sim.completions()) == 1


def test_retry_after_beyond_the_deadline_is_not_waited(gateway, sim):
    push(sim, Fault(kind="status", status=429, headers={"retry-after": "2"}))
    error = openai_error(gateway, extra_headers={"x-llm-timeout-ms": "1000"})
    assert error.status_code == 429
    assert error.response.headers["x-llm-attempts"] == "1"


def test_insufficient_quota_429_is_not_retried(gateway, sim):
    push(sim, Fault(kind="status", status=429, sample="429-insufficient_quota"))
    error = openai_error(gateway)
    assert error.status_code == 429
    assert error.response.headers["x-llm-attempts"] == "1"


# --- never retried ----------------------------------------------------------------------------


# upstream status -> (status, type) the client gets, by the contract's taxonomy
NEVER_RETRIED = {
    400: (400, "invalid_request"),
    401: (401, "invalid_api_key"),
    403: (502, "provider_error"),
    404: (404, "model_not_found"),
    413: (400, "invalid_request"),
    422: (400, "invalid_request"),
}


@pytest.mark.parametrize("model", ["gpt-4o", "claude-3.5-sonnet"])
def test_client_and_config_errors_are_never_retried(gateway, sim, model):
    for upstream_status, expected in NEVER_RETRIED.items():
        sim.sim.clear()
        push(sim, Fault(kind="status", status=upstream_status))
        error = openai_error(gateway, model=model)
        assert (error.status_code, error.body["type"]) == expected
        assert error.response.headers["x-llm-attempts"] == "1"
        assert len(sim.completions()) == 1
        sim.sim.faults.clear()


# --- streams ----------------------------------------------------------------------------------


def stream_text(gateway, model: str = "gpt-4o", **kwargs: Any) -> tuple[str, Any]:
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=HELLO, stream=True, **kwargs
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, raw.headers


BEFORE_FIRST_EVENT = [
    Fault(kind="reset"),
    Fault(kind="status", status=503),
    Fault(kind="stream_cut", after_events=0),
    Fault(kind="stream_error", after_events=0),  # e.g. Anthropic's overloaded_error event
    Fault(kind="wrong_content_type"),
]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-3.5-sonnet"])
def test_stream_failing_before_its_first_event_is_retried(gateway, sim, model):
    for fault in BEFORE_FIRST_EVENT:
        sim.sim.clear()
        sim.sim.faults.push(fault)
        text, headers = stream_text(gateway, model)
        assert text, fault
        assert headers["x-llm-attempts"] == "2", fault
        assert_backoff(sim, 2)


def test_stream_failing_every_time_before_its_first_event_is_an_http_error(gateway, sim):
    push(sim, Fault(kind="stream_cut", after_events=0))
    error = openai_error(gateway, stream=True)
    assert error.status_code == 502
    assert error.response.headers["x-llm-attempts"] == "3"
    assert_backoff(sim, 3)


def test_stream_cut_midway_is_never_retried(gateway, sim):
    sim.sim.faults.push(Fault(kind="stream_cut", after_events=3))
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, stream=True
    )
    assert raw.headers["x-llm-attempts"] == "1"
    with pytest.raises(openai.APIError, match="before the stream was complete"):
        list(raw.parse())
    assert len(sim.completions()) == 1


def test_stream_first_byte_timeout_retries_a_slow_upstream(gateway_factory, sim):
    gateway = gateway_factory({**POLICY, "timeouts": {"request_ms": 10000, "first_byte_ms": 300}})
    push(sim, Fault(kind="slow_body", delay_ms=5000), times=1)
    push(sim, Fault(kind="slow_headers", delay_ms=5000), times=1)
    text, headers = stream_text(gateway)
    assert text
    assert headers["x-llm-attempts"] == "3"
    # each wait = the 300 ms first-byte limit (counted from the send, a little before the
    # fake's receive time, hence the margin) + the backoff
    for n, gap in enumerate(gaps(sim)):
        floor = 0.3 + INITIAL_S * 2**n * (1 - JITTER) - 0.05
        assert floor <= gap <= floor + SLACK_S + 0.1, gaps(sim)


def test_stream_first_byte_timeout_every_time_is_a_504(gateway_factory, sim):
    gateway = gateway_factory({**POLICY, "timeouts": {"request_ms": 10000, "first_byte_ms": 200}})
    push(sim, Fault(kind="slow_headers", delay_ms=5000))
    error = openai_error(gateway, stream=True)
    assert error.status_code == 504
    assert error.body["type"] == "timeout"
    assert error.response.headers["x-llm-attempts"] == "3"


def test_errors_before_any_upstream_attempt_say_zero_attempts(gateway, sim):
    unknown = openai_error(gateway, model="no-such-model")
    assert unknown.status_code == 404
    assert unknown.response.headers["x-llm-attempts"] == "0"
    invalid = openai_error(gateway, temperature="hot")
    assert invalid.status_code == 400
    assert invalid.response.headers["x-llm-attempts"] == "0"
    assert sim.completions() == []
