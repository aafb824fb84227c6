"""The response cache as the request path sees it: a lookup before the upstream call, a store
after a complete answer, and the backend kept in step with config reloads.

One :class:`ResponseCache` lives on the gateway state. :meth:`ResponseCache.lookup` gives each
request a :class:`Lookup` (None when the cache does not apply to its model) that remembers the
key, what the client's ``cache-control`` allows, and the answer found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from proxy.config.cache import MEMORY, BackendSettings
from proxy.config.snapshot import Snapshot
from proxy.engine.cache import key as keys
from proxy.engine.cache.entry import Answer, storable
from proxy.engine.cache.memory import MemoryStore
from proxy.engine.cache.redis_store import RedisStore
from proxy.engine.cache.stats import CacheStats
from proxy.engine.dialects import native_target
from proxy.engine.route import Target, resolve
from proxy.errors import GatewayError
from proxy.providers.base import NativeDialect

if TYPE_CHECKING:
    from proxy.engine.attempts import Call

log = logging.getLogger("llm_edge_agent.cache")

HIT, MISS, BYPASS = "hit", "miss", "bypass"
CLOSE_AFTER_S = 5.0
"""A replaced Redis client is closed this long after a reload, once its calls are over."""


@dataclass(slots=True)
class Lookup:
    """One request's use of the cache."""

    status: str  # hit | miss | bypass: the x-llm-cache header
    key: bytes
    route: bytes
    ttl_s: float
    store: bool  # may this request's answer be stored (no-store says no)
    answer: Answer | None = None
    stored: bool = False


class ResponseCache:
    """The backend for the current snapshot, and the counters ``/metrics`` reads."""

    def __init__(self) -> None:
        self.stats = CacheStats()
        self._settings: BackendSettings | None = None
        self._backend: MemoryStore | RedisStore | None = None
        # Each model's route for the snapshot requests last used (names are configured ones:
        # an unknown model is a 404 before any lookup).
        self._snapshot: Snapshot | None = None
        self._table: dict[tuple[str, str], _Route | None] = {}

    @property
    def backend(self) -> MemoryStore | RedisStore | None:
        return self._backend

    def sync(self, snapshot: Snapshot) -> None:
        """Follow a (re)loaded config: keep the backend while its settings hold, drop the memory
        entries of models whose routing changed, replace the backend when its settings changed."""
        cache = snapshot.cache
        settings = cache.backend if cache.models else None
        if settings != self._settings:
            self._replace(settings)
        if isinstance(self._backend, MemoryStore):
            self._backend.keep_routes(_routes(snapshot))

    def _replace(self, settings: BackendSettings | None) -> None:
        old, self._settings = self._backend, settings
        if isinstance(old, MemoryStore) and settings is not None and settings.kind == MEMORY:
            old.resize(settings.max_bytes)  # only the bound (or a Redis-only key) changed
            return
        if isinstance(old, MemoryStore):
            old.clear()
        elif isinstance(old, RedisStore):
            _close_later(old)
        if settings is None:
            self._backend = None
        elif settings.kind == MEMORY:
            self._backend = MemoryStore(settings.max_bytes, self.stats)
        else:
            self._backend = RedisStore(settings, self.stats)
            _in_background(self._backend.warm())

    async def close(self) -> None:
        if isinstance(self._backend, RedisStore):
            await self._backend.close()
        self._backend, self._settings = None, None

    async def lookup(
        self,
        call: Call,
        headers: Mapping[str, str],
        presented: Callable[[Mapping[str, str]], Sequence[bytes]],
    ) -> Lookup | None:
        """The request's lookup (with the answer when it is a hit), or None when the cache does
        not apply: the model is not cached, the request cannot be translated (the attempt then
        reports that error), or it passes through natively in a dialect that has no unified
        form (a Responses API request to OpenAI). ``presented`` reads the request's
        credentials, only when inbound auth is on."""
        snapshot = call.snapshot
        backend = self._backend
        route = self._route(snapshot, call.dialect, str(call.body.get("model")))
        if route is None or backend is None:
            return None
        tokens = snapshot.server.auth.tokens
        who = keys.identity(presented(headers), tokens) if tokens else keys.ANONYMOUS
        if who is None:
            return None
        try:
            body = keys.canonical(call.dialect, call.body, route.target)
        except GatewayError:
            return None
        found = Lookup(MISS, keys.cache_key(route.id, who, body), route.id, route.ttl_s, True)
        if headers.get("cache-control"):
            read, found.store = keys.cache_control(headers)
            if not read:
                found.status = BYPASS
                return found
        if isinstance(backend, MemoryStore):  # no coroutine for a dictionary lookup
            data = backend.get_now(found.key)
        else:
            data = await backend.get(found.key)
        if data is not None:
            try:
                found.answer = Answer.decode(data)
            except (ValueError, KeyError, TypeError):
                self.stats.evicted("unreadable")  # another version's or a corrupt entry
            else:
                found.status = HIT
        return found

    def _route(self, snapshot: Snapshot, dialect: str, name: str) -> _Route | None:
        """The cached route of a model for a dialect, worked out once per snapshot."""
        if snapshot is not self._snapshot:
            self._snapshot, self._table = snapshot, {}
        found = self._table.get((dialect, name), _UNKNOWN)
        if found is _UNKNOWN:
            found = self._table[(dialect, name)] = _new_route(snapshot, dialect, name)
        return found  # type: ignore[return-value]

    async def store(
        self, lookup: Lookup, target: Target, completion: dict[str, Any], cost: Decimal | None
    ) -> bool:
        """Keep ``completion`` (unified) if it is a complete answer the client let us store."""
        backend = self._backend
        value = self._entry(lookup, target, completion, cost)
        if value is None or backend is None:
            return False
        if isinstance(backend, MemoryStore):
            stored = backend.put_now(lookup.key, value, lookup.ttl_s, lookup.route)
        else:
            stored = await backend.put(lookup.key, value, lookup.ttl_s, lookup.route)
        return self._stored(stored, value)

    def store_now(
        self, lookup: Lookup, target: Target, completion: dict[str, Any], cost: Decimal | None
    ) -> bool:
        """:meth:`store` for the memory backend, which has nothing to wait for: the request
        path runs it on the loop's next turn (once the response is written); False with any
        other backend."""
        backend = self._backend
        if not isinstance(backend, MemoryStore):
            return False
        value = self._entry(lookup, target, completion, cost)
        if value is None:
            return False
        return self._stored(backend.put_now(lookup.key, value, lookup.ttl_s, lookup.route), value)

    @property
    def stores_later(self) -> bool:
        """Whether the request path may store after its response (see :meth:`store_now`)."""
        return isinstance(self._backend, MemoryStore)

    def _entry(
        self, lookup: Lookup, target: Target, completion: dict[str, Any], cost: Decimal | None
    ) -> bytes | None:
        """The encoded entry, or None when there is nothing to store (settles the lookup)."""
        settings = self._settings
        if not lookup.store or lookup.stored or settings is None or not storable(completion):
            return None
        lookup.stored = True
        answer = Answer(
            _without_cost(completion),
            target.provider.name,
            target.model.name,
            target.upstream_model,
            cost,
        )
        # Compressed for Redis (the network and the shared server's memory); the memory
        # backend keeps plain JSON, so a hit there never pays for zlib.
        return answer.encode(settings.compress_min_bytes if settings.kind != MEMORY else None)

    def _stored(self, stored: bool, value: bytes) -> bool:
        if stored:
            self.stats.stores += 1
            self.stats.bytes_stored += len(value)
        return stored


@dataclass(frozen=True, slots=True)
class _Route:
    ttl_s: float
    target: Target  # the primary target, speaking the dialect natively if its vendor can
    id: bytes  # keys.route(target)


_UNKNOWN = object()


def _new_route(snapshot: Snapshot, dialect: str, name: str) -> _Route | None:
    """None when the cache does not apply: the model is not cached, or its requests in this
    dialect pass through natively with no unified form to store (Responses to OpenAI)."""
    model = snapshot.resolve(name)
    ttl_s = snapshot.cache.ttl_for(model.name) if model is not None else None
    if ttl_s is None:
        return None
    target = native_target(dialect, resolve(snapshot, name))
    if isinstance(target.vendor, NativeDialect):
        return None
    return _Route(ttl_s, target, keys.route(target))


def _routes(snapshot: Snapshot) -> set[bytes]:
    """The routes of every cached model: entries under any other route are stale."""
    routes = set()
    for name in snapshot.cache.models:
        routes.add(keys.route(resolve(snapshot, name)))
    return routes


def _without_cost(completion: dict[str, Any]) -> dict[str, Any]:
    usage = completion.get("usage")
    if isinstance(usage, dict) and "cost" in usage:
        return {**completion, "usage": {k: v for k, v in usage.items() if k != "cost"}}
    return completion


def _close_later(store: RedisStore) -> None:
    """Requests that began before the reload may still be using the old client."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop (a test swapping snapshots by hand): nothing is using it
    loop.call_later(CLOSE_AFTER_S, _in_background, store.close())


_tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    try:
        task = asyncio.get_running_loop().create_task(work)
    except RuntimeError:
        work.close()  # no loop running: nothing to warm or close yet
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
