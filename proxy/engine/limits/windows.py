"""Fixed UTC calendar windows: a period's current window and the seconds until it resets.

Every sidecar computes the same window from the same clock reading, so windows need no
coordination; the window's start names the store key, so a new window is simply a new key.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_FIXED = {"minute": 60, "hour": 3600, "day": 86400}


def window(period: str, now: float) -> tuple[int, int]:
    """(start, end) in whole epoch seconds of the UTC ``period`` holding ``now``."""
    size = _FIXED.get(period)
    if size is not None:
        start = int(now // size) * size
        return start, start + size
    return _month(now)


def _month(now: float) -> tuple[int, int]:
    moment = datetime.fromtimestamp(now, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    following = (
        datetime(moment.year + 1, 1, 1, tzinfo=UTC)
        if moment.month == 12
        else datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    )
    return int(start.timestamp()), int(following.timestamp())


def retry_after(end: float, now: float) -> int:
    """Whole seconds to the window's end, rounded up, at least 1 (the contract's retry-after)."""
    return max(math.ceil(end - now), 1)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
