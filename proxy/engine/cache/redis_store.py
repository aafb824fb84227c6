"""The Redis backend: entries shared by every sidecar pointed at the same Redis.

Redis trouble never fails a request. Every call has a short deadline (``redis_timeout_ms``);
a refused connection, a timeout, a protocol or auth error is a miss (for a read) or a skipped
store (for a write), counted in ``/metrics`` and logged once per incident: one warning when
Redis goes away, one line when it answers again. While it is away, calls are not even tried
for :data:`RETRY_S` (so a black-holed Redis does not add its deadline to every request); the
first call after that reconnects by itself through the client's connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.config.cache import BackendSettings
from proxy.engine.cache.stats import CacheStats

log = logging.getLogger("llm_edge_agent.cache")

RETRY_S = 0.5
"""After a failed call, how long calls are answered as misses before Redis is tried again."""
FAULTS = (RedisError, OSError, TimeoutError, ValueError)
"""What a failed call raises: redis-py's errors, sockets', our deadline, a bad reply."""
MAX_IDLE = 32
"""Idle connections kept for the next calls; more are closed once their call is over."""


class RedisStore:
    def __init__(self, settings: BackendSettings, stats: CacheStats) -> None:
        self._stats = stats
        self._prefix = settings.key_prefix.encode()
        self._timeout_s = settings.redis_timeout_ms / 1000
        # redis.asyncio's connections (URL, TLS, AUTH/HELLO, RESP parsing), used one command
        # at a time from a free list of our own: the client's execute_command (pool checkout
        # and release under locks, retry wrapper, observability hooks) cost ~100 us of CPU
        # per GET, more than the round trip. No socket_timeout: with one, each write runs
        # in asyncio.wait_for, a task per command; our per-call deadline covers both ways.
        self._pool = aioredis.ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=None,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),  # one try within the deadline; a miss is cheaper
            health_check_interval=0,
        )
        self._idle: list[AbstractConnection] = []
        self._closed = False
        self._down_since: float | None = None
        self._retry_at = 0.0

    async def warm(self) -> None:
        """Open a first connection before the first request needs one (errors are its own)."""
        with contextlib.suppress(*FAULTS):
            await self._command("PING")

    @property
    def down(self) -> bool:
        return self._down_since is not None

    async def get(self, key: bytes) -> bytes | None:
        if self._skipping():
            return None
        try:
            value = await self._command("GET", self._prefix + key.hex().encode())
        except FAULTS as exc:
            self._failed(exc, "read")
            return None
        self._answered()
        return value if isinstance(value, bytes) else None

    async def put(self, key: bytes, value: bytes, ttl_s: float, route: bytes) -> bool:
        if self._skipping():
            return False
        try:
            px = max(int(ttl_s * 1000), 1)
            await self._command("SET", self._prefix + key.hex().encode(), value, "PX", px)
        except FAULTS as exc:
            self._failed(exc, "write")
            return False
        self._answered()
        return True

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _disconnect(conn)

    async def _command(self, *args: bytes | str | int) -> object:
        """One command and its reply within the deadline, on an idle connection (or a new
        one, which connects on first use: that is how a returning Redis is found again)."""
        conn = self._idle.pop() if self._idle else self._pool.make_connection()
        try:
            async with asyncio.timeout(self._timeout_s):
                await conn.send_packed_command(conn.pack_command(*args), check_health=False)
                reply = await conn.read_response(disable_decoding=True)
        except BaseException:
            await _disconnect(conn)  # its state is unknown (a reply may still be coming)
            raise
        if self._closed or len(self._idle) >= MAX_IDLE:
            await _disconnect(conn)
        else:
            self._idle.append(conn)
        return reply

    def _skipping(self) -> bool:
        return self._down_since is not None and time.monotonic() < self._retry_at

    def _failed(self, exc: BaseException, what: str) -> None:
        self._stats.redis_errors += 1
        now = time.monotonic()
        self._retry_at = now + RETRY_S
        if self._down_since is None:
            self._down_since = now
            # The exception's type only: its text may hold the URL, and so the password.
            log.warning(
                "response cache: Redis %s failed (%s); serving without the cache until it "
                "answers again",
                what,
                type(exc).__name__,
            )

    def _answered(self) -> None:
        if self._down_since is not None:
            down_s = time.monotonic() - self._down_since
            log.warning("response cache: Redis answers again after %.1f s", down_s)
            self._down_since = None


async def _disconnect(conn: AbstractConnection) -> None:
    with contextlib.suppress(*FAULTS):
        await conn.disconnect(nowait=True)
