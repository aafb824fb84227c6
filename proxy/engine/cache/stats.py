"""The cache's own counters (read by ``/metrics`` at scrape time); lookups and cost saved are
counted per request from the request record instead."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CacheStats:
    stores: int = 0
    bytes_stored: int = 0  # encoded bytes written, all stores together
    evictions: dict[str, int] = field(default_factory=dict)  # reason -> count
    redis_errors: int = 0
    memory_bytes: int = 0  # what the memory backend's entries take now
    memory_entries: int = 0

    def evicted(self, reason: str, count: int = 1) -> None:
        self.evictions[reason] = self.evictions.get(reason, 0) + count
