"""The memory backend: one sidecar's entries, least recently used out first, bounded in bytes.

An entry is counted by its real size (the encoded answer, its key and the bookkeeping around
them), so ``max_bytes`` bounds what the cache actually holds. Expired entries are dropped when
met, or leave in LRU order. Each entry remembers its route, so a reload can drop the
entries of exactly the models whose routing changed.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from proxy.engine.cache.stats import CacheStats

ENTRY_OVERHEAD = 200
"""Bytes of bookkeeping per entry besides its key and value: the ordered dict's slot and
node, and the entry tuple (measured on CPython 3.11, rounded up)."""


class MemoryStore:
    def __init__(
        self, max_bytes: int, stats: CacheStats, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self._stats = stats
        self._clock = clock
        # key -> (value, expires at, route, size)
        self._entries: OrderedDict[bytes, tuple[bytes, float, bytes, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def get(self, key: bytes) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: bytes) -> bytes | None:
        """:meth:`get` without a coroutine, for the request path."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._drop(key, "expired")
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def put(self, key: bytes, value: bytes, ttl_s: float, route: bytes) -> bool:
        return self.put_now(key, value, ttl_s, route)

    def put_now(self, key: bytes, value: bytes, ttl_s: float, route: bytes) -> bool:
        """:meth:`put` without a coroutine, for the request path."""
        size = sys.getsizeof(key) + sys.getsizeof(value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return False  # could never fit; keep what is there
        if key in self._entries:
            self._drop(key, None)
        self._make_room(self.max_bytes - size)
        self._entries[key] = (value, self._clock() + ttl_s, route, size)
        self._bytes += size
        self._publish()
        return True

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._make_room(max_bytes)

    def keep_routes(self, routes: Collection[bytes]) -> int:
        """Drop every entry whose route is not in ``routes`` (a reload re-routed its model)."""
        stale = [key for key, entry in self._entries.items() if entry[2] not in routes]
        for key in stale:
            self._drop(key, "reload")
        return len(stale)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._publish()

    def _make_room(self, limit: int) -> None:
        """Evict least recently used entries until at most ``limit`` bytes are held (O(1) each:
        no scan for expired ones, which are dropped when met)."""
        while self._bytes > limit and self._entries:
            self._drop(next(iter(self._entries)), "lru")

    def _drop(self, key: bytes, reason: str | None) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry[3]
        if reason is not None:
            self._stats.evicted(reason)
        self._publish()

    def _publish(self) -> None:
        self._stats.memory_bytes = self._bytes
        self._stats.memory_entries = len(self._entries)
