"""The cache key: a hash of the canonical upstream request, its route and the inbound identity.

Keyed on what the vendor would receive (after translation), so two requests equal after
translation share an answer whatever dialect sent them. ``stream`` and ``stream_options`` are
left out: a stored answer replays as a whole response or as a stream, as asked. The route
(vendor endpoint and upstream model) is part of the key, so a reload that re-routes a model
never serves the old route's answers. Only a BLAKE2b digest is kept: no prompt text, and
no token, ever reaches a store. BLAKE2b rather than SHA-256: both are cryptographic hashes,
but ``hashlib.sha256`` goes through OpenSSL 3, whose per-call digest fetch and context set-up
cost ~10-15 us a request on a cold cache (measured with ``perf`` on a loaded gateway), where
the built-in BLAKE2b is a plain C call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson

from proxy.engine.dialects import DIALECTS
from proxy.engine.route import Target

JSON = dict[str, Any]
UNKEYED = frozenset({"stream", "stream_options"})
"""Request fields that never change the answer's content, only how it is delivered."""
VERSION = b"llm-edge-cache/2\n"
"""Changes whenever what a key covers changes, so old entries are simply never found."""
ANONYMOUS = b"\0" * 32
"""The identity every client shares when inbound auth is off."""


def canonical(dialect: str, body: JSON, target: Target) -> bytes:
    """The request as ``target``'s vendor would receive it, without what does not change the
    answer, as bytes where key order and whitespace do not count (a GatewayError if the
    request cannot be translated)."""
    if dialect == target.vendor.wire:  # pass-through: only the model changes
        kept = {k: v for k, v in body.items() if k not in UNKEYED}
        kept["model"] = target.upstream_model
    else:
        unified = DIALECTS[dialect].request_to_unified(body)
        wire, _ = target.vendor.request_from_unified(unified, target)
        kept = {k: v for k, v in wire.items() if k not in UNKEYED}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


def _digest(data: bytes) -> bytes:
    return blake2b(data, digest_size=32).digest()


def route(target: Target) -> bytes:
    """What the answer depends on besides the body: the vendor endpoint and upstream model."""
    provider = target.provider
    headers = tuple(sorted(provider.headers.items()))
    return _route(
        provider.type, provider.base_url, provider.anthropic_version, headers, target.upstream_model
    )


@lru_cache(maxsize=256)
def _route(kind: str, url: str, version: str, headers: tuple[Any, ...], model: str) -> bytes:
    return _digest(orjson.dumps([kind, url, version, headers, model]))[:16]


def cache_key(route_id: bytes, identity: bytes, body: bytes) -> bytes:
    """32 bytes naming one answer (the route and identity digests have fixed lengths)."""
    return _digest(b"".join((VERSION, route_id, identity, body)))


def identity(presented: Sequence[bytes], tokens: tuple[str, ...]) -> bytes | None:
    """The hash of the accepted inbound token (auth on), else :data:`ANONYMOUS`; None when
    no presented value is a token of this snapshot (a reload raced the auth check): then the
    request does not use the cache at all."""
    if not tokens:
        return ANONYMOUS
    known = _token_digests(tokens)
    for candidate in presented:
        digest = _digest(candidate)
        if digest in known:
            return digest
    return None


@lru_cache(maxsize=4)
def _token_digests(tokens: tuple[str, ...]) -> frozenset[bytes]:
    return frozenset(_digest(token.encode()) for token in tokens)


def cache_control(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(look up, store) as the client's ``cache-control`` allows."""
    value = headers.get("cache-control")
    if not value:
        return True, True
    directives = {part.split("=", 1)[0].strip().lower() for part in value.split(",")}
    if "no-store" in directives:
        return False, False
    return "no-cache" not in directives, True
