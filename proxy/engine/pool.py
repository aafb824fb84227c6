"""Upstream connection pools by provider: one :class:`UpstreamPool` per provider, created once.

On a config reload a provider whose connection settings did not change keeps its pool and its
warm connections; a changed or removed provider's pool is retired and closed only once the last
request leasing it has finished.
"""

from __future__ import annotations

import asyncio

from proxy.config.egress import parse_proxy, tls_context
from proxy.config.snapshot import PoolSettings, ProviderConfig, Snapshot
from proxy.engine.connections import UpstreamPool


def new_pool(provider: ProviderConfig, settings: PoolSettings | None = None) -> UpstreamPool:
    """The provider's pool (``settings`` in place of its own); its proxy and TLS files were
    checked when the config loaded."""
    proxy = parse_proxy(provider.proxy_url) if provider.proxy_url else None
    https = provider.base_url.startswith("https:")
    return UpstreamPool(
        provider.base_url,
        settings or provider.pool,
        provider.timeouts.connect_ms,
        proxy=proxy,
        tls=tls_context(provider.tls) if https else None,
    )


class _Entry:
    __slots__ = ("key", "leases", "pool", "retired")

    def __init__(self, key: tuple[object, ...], pool: UpstreamPool) -> None:
        self.key, self.pool, self.leases, self.retired = key, pool, 0, False


class Lease:
    """A provider's pool held for one request: ``with pools.lease(provider) as pool``.

    A plain class, not a generator-based context manager: it is entered on every request.
    The lease count is what keeps a retired pool open until its last request ends.
    """

    __slots__ = ("_entry", "_pools", "_provider")

    def __init__(self, pools: Pools, provider: ProviderConfig) -> None:
        self._pools, self._provider = pools, provider
        self._entry: _Entry | None = None

    def __enter__(self) -> UpstreamPool:
        entry = self._entry = self._pools._entry_for(self._provider)
        entry.leases += 1
        return entry.pool

    def __exit__(self, *exc_info: object) -> None:
        entry = self._entry
        if entry is None:
            return
        self._entry = None
        entry.leases -= 1
        if entry.retired and entry.leases == 0:
            self._pools._close_later(entry)


class Pools:
    """Pools by provider name, leased per request so reloads never close one in use."""

    def __init__(self) -> None:
        self._live: dict[str, _Entry] = {}
        self._retired: set[_Entry] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def sync(self, snapshot: Snapshot) -> None:
        """Create pools for new or changed providers; retire the others' pools."""
        for name, provider in snapshot.providers.items():
            entry = self._live.get(name)
            key = provider.connection_key()
            if entry is not None and entry.key == key:
                continue
            if entry is not None:
                self._retire(entry)
            self._live[name] = _Entry(key, new_pool(provider))
        for name in [n for n in self._live if n not in snapshot.providers]:
            self._retire(self._live.pop(name))

    def lease(self, provider: ProviderConfig) -> Lease:
        """The provider's pool, held open until the ``with`` block ends."""
        return Lease(self, provider)

    def _entry_for(self, provider: ProviderConfig) -> _Entry:
        key = provider.connection_key()
        entry = self._live.get(provider.name)
        if entry is not None and entry.key == key:
            return entry
        # A request that started on an older snapshot: its pool may be retired already.
        entry = next((e for e in self._retired if e.key == key), None)
        if entry is None:
            entry = _Entry(key, new_pool(provider))
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
        task = asyncio.get_running_loop().create_task(entry.pool.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def retired_count(self) -> int:
        return len(self._retired)

    def upstreams(self) -> dict[str, UpstreamPool]:
        return {name: entry.pool for name, entry in self._live.items()}

    async def close(self) -> None:
        for entry in [*self._live.values(), *self._retired]:
            await entry.pool.close()
        self._live.clear()
        self._retired.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
