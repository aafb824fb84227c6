"""Retry timing: exponential backoff with proportional jitter, and ``retry-after`` parsing.

The exponential schedule is aiohttp-retry's ``ExponentialRetry.get_timeout`` (start * 2**n,
capped). Its ``RetryClient`` itself does not fit: it cannot honour ``retry-after``, share one
total deadline across attempts and backoffs, wait for a stream's first event before deciding,
move on to fallback models or feed a circuit breaker, so the attempt loop is ours
(:mod:`proxy.engine.attempts`). Its ``JitterRetry`` adds up to ``2**2`` s of absolute noise,
far too much for 100 ms steps, hence the proportional jitter here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache
from time import time

from aiohttp_retry import ExponentialRetry

from proxy.config.snapshot import RetryPolicy
from proxy.errors import GatewayError


def backoff_s(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> float:
    """Delay before retry ``retry_number`` (1 = the first retry): ~100, 200, 400 ms ... capped.

    The jitter spreads each wait by +/- ``policy.jitter`` of itself but never past the cap, so
    ``max_backoff_ms`` is a true upper bound.
    """
    base = _schedule(policy).get_timeout(min(retry_number - 1, 64))  # 2.0**n stays finite
    spread = base * policy.jitter
    jittered = base + (rng or random).uniform(-spread, spread)
    return min(max(0.0, jittered), policy.max_backoff_ms / 1000)


@lru_cache(maxsize=64)
def _schedule(policy: RetryPolicy) -> ExponentialRetry:
    return ExponentialRetry(
        start_timeout=policy.initial_backoff_ms / 1000,
        max_timeout=policy.max_backoff_ms / 1000,
        factor=2.0,
    )


def parse_retry_after(headers: Mapping[str, str | None] | None) -> float | None:
    """The upstream's requested wait in seconds: ``retry-after-ms`` (OpenAI's finer form) wins
    over ``retry-after`` (seconds or an HTTP date). None when absent or unreadable."""
    if not headers:
        return None
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000, 0.0)
    seconds = headers.get("retry-after")
    if not seconds:
        return None
    value = _number(seconds)
    if value is None:
        try:
            value = parsedate_to_datetime(seconds).timestamp() - time()
        except (TypeError, ValueError):
            return None
    return max(value, 0.0)


def retry_after_s(headers: Mapping[str, str | None] | None, cap_ms: int) -> float | None:
    """:func:`parse_retry_after`, capped at ``cap_ms``."""
    value = parse_retry_after(headers)
    return None if value is None else min(value, cap_ms / 1000)


def asked_wait_s(error: GatewayError) -> float | None:
    """The wait an upstream error asked for (its ``retry-after(-ms)``), uncapped."""
    return parse_retry_after(
        {"retry-after": error.retry_after, "retry-after-ms": error.retry_after_ms}
    )


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
