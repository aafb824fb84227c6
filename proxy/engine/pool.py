"""Pooled upstream sessions: one ``aiohttp.ClientSession`` per provider, created once.

On a config reload a provider whose connection settings did not change keeps its session and
its warm connections; a changed or removed provider's session is retired and closed only once
the last request leasing it has finished.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiohttp

from proxy.config.snapshot import PoolSettings, ProviderConfig, Snapshot


class _CappedIdleConnector(aiohttp.TCPConnector):
    """A TCPConnector that keeps at most ``max_idle`` idle connections per host.

    aiohttp keeps every released connection until ``keepalive_timeout``; the contract's
    ``max_idle_per_host`` needs a cap, so a release beyond it closes the connection instead
    (``max_idle_per_host: 0`` closes every connection after its request).
    """

    def __init__(self, *, max_idle: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_idle = max_idle

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        idle = self._conns.get(key)
        if (len(idle) if idle else 0) >= self._max_idle:
            should_close = True
        super()._release(key, protocol, should_close=should_close)


def _keepalive_socket_factory(keepalive_s: float) -> Callable[[Any], socket.socket]:
    """Sockets with TCP keepalive probes after ``keepalive_s`` idle seconds."""

    def make(addr_info: Any) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(int(keepalive_s), 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(idle // 4, 1))
        return sock

    return make


def new_session(pool: PoolSettings, connect_ms: int) -> aiohttp.ClientSession:
    """A provider's session: at most ``max_connections`` open connections (more requests queue
    for one), each TCP connect bounded by ``connect_ms``.

    The connect limit is ``sock_connect``, not aiohttp's ``connect``: that one also counts the
    wait for a free pooled connection, so a busy pool would look like a dead provider (and trip
    the breaker). The wait for a free connection is bounded by the request's own deadline.
    """
    connector = _CappedIdleConnector(
        max_idle=pool.max_idle_per_host,
        limit=pool.max_connections,
        keepalive_timeout=pool.idle_timeout_s,
        socket_factory=_keepalive_socket_factory(pool.tcp_keepalive_s),
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_ms / 1000),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        json_serialize=None,  # type: ignore[arg-type]  # bodies are pre-serialised bytes
    )


class _Entry:
    __slots__ = ("key", "leases", "retired", "session")

    def __init__(self, key: tuple[object, ...], session: aiohttp.ClientSession) -> None:
        self.key, self.session, self.leases, self.retired = key, session, 0, False


class Lease:
    """A provider's session held for one request: ``with pools.lease(provider) as session``.

    A plain class, not a generator-based context manager: it is entered on every request.
    The lease count is what keeps a retired session open until its last request ends.
    """

    __slots__ = ("_entry", "_pools", "_provider")

    def __init__(self, pools: Pools, provider: ProviderConfig) -> None:
        self._pools, self._provider = pools, provider
        self._entry: _Entry | None = None

    def __enter__(self) -> aiohttp.ClientSession:
        entry = self._entry = self._pools._entry_for(self._provider)
        entry.leases += 1
        return entry.session

    def __exit__(self, *exc_info: object) -> None:
        entry = self._entry
        if entry is None:
            return
        self._entry = None
        entry.leases -= 1
        if entry.retired and entry.leases == 0:
            self._pools._close_later(entry)


class Pools:
    """Sessions by provider name, leased per request so reloads never close one in use."""

    def __init__(self) -> None:
        self._live: dict[str, _Entry] = {}
        self._retired: set[_Entry] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def sync(self, snapshot: Snapshot) -> None:
        """Create sessions for new or changed providers; retire the others' sessions."""
        for name, provider in snapshot.providers.items():
            entry = self._live.get(name)
            key = provider.connection_key()
            if entry is not None and entry.key == key:
                continue
            if entry is not None:
                self._retire(entry)
            self._live[name] = _Entry(key, new_session(provider.pool, provider.timeouts.connect_ms))
        for name in [n for n in self._live if n not in snapshot.providers]:
            self._retire(self._live.pop(name))

    def lease(self, provider: ProviderConfig) -> Lease:
        """The provider's session, held open until the ``with`` block ends."""
        return Lease(self, provider)

    def _entry_for(self, provider: ProviderConfig) -> _Entry:
        key = provider.connection_key()
        entry = self._live.get(provider.name)
        if entry is not None and entry.key == key:
            return entry
        # A request that started on an older snapshot: its session may be retired already.
        entry = next((e for e in self._retired if e.key == key), None)
        if entry is None:
            entry = _Entry(key, new_session(provider.pool, provider.timeouts.connect_ms))
            entry.retired = True
            self._retired.add(entry)
        return entry

    def _retire(self, entry: _Entry) -> None:
        entry.retired = True
        if entry.leases == 0:
            self._close_later(entry)
        else:
            self._retired.add(entry)

    def _close_later(self, entry: _Entry) -> None:
        self._retired.discard(entry)
        task = asyncio.get_running_loop().create_task(entry.session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def retired_count(self) -> int:
        return len(self._retired)

    def sessions(self) -> dict[str, aiohttp.ClientSession]:
        return {name: entry.session for name, entry in self._live.items()}

    async def close(self) -> None:
        for entry in [*self._live.values(), *self._retired]:
            await entry.session.close()
        self._live.clear()
        self._retired.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
