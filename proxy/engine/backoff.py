"""Retry timing: exponential backoff with proportional jitter, and ``retry-after`` parsing.

The exponential schedule is aiohttp-retry's ``ExponentialRetry.get_timeout`` (start * 2**n,
capped). Its ``RetryClient`` itself does not fit: it cannot honour ``retry-after``, share one
total deadline across attempts and backoffs, wait for a stream's first event before deciding,
move on to fallback models or feed a circuit breaker, so the attempt loop is ours
(:mod:`proxy.engine.attempts`). Its ``JitterRetry`` adds up to ``2**2`` s of absolute noise,
far too much for 100 ms steps, hence the proportional jitter here.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from time import time

from aiohttp_retry import ExponentialRetry

from proxy.config.snapshot import RetryPolicy


def backoff_s(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> float:
    """Delay before retry ``retry_number`` (1 = the first retry): ~100, 200, 400 ms ... capped."""
    schedule = ExponentialRetry(
        start_timeout=policy.initial_backoff_ms / 1000,
        max_timeout=policy.max_backoff_ms / 1000,
        factor=2.0,
    )
    base = schedule.get_timeout(retry_number - 1)
    spread = base * policy.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


def retry_after_s(headers: dict[str, str] | None, cap_ms: int) -> float | None:
    """The upstream's requested wait (``retry-after-ms``, else ``retry-after`` seconds or an
    HTTP date), capped at ``cap_ms``; None when absent or unreadable."""
    if not headers:
        return None
    value: float | None = None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = None
    seconds = headers.get("retry-after")
    if value is None and seconds:
        try:
            value = float(seconds)
        except ValueError:
            try:
                value = parsedate_to_datetime(seconds).timestamp() - time()
            except (TypeError, ValueError):
                value = None
    if value is None:
        return None
    return min(max(value, 0.0), cap_ms / 1000)
