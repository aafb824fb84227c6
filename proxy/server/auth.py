"""Inbound auth: bearer tokens read from the environment, checked in constant time.

Off while ``server.auth.tokens`` is empty: by default the sidecar listens on loopback, where
only its own pod or host can reach it. When on, every endpoint needs a token except the
probes (``/healthz``, ``/readyz``: the kubelet sends none) and, unless
``protect_ops_endpoints``, ``/metrics``, ``/status`` and ``/health/providers``. The snapshot is
read per request, so a reload that changes the tokens applies to the next request.

The token comes as ``Authorization: Bearer <token>`` (OpenAI SDKs, newer Anthropic SDKs) or
``x-api-key: <token>`` (older Anthropic SDKs). It is only compared here: upstream requests
carry headers built from scratch, so a client's credential never leaves the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from functools import lru_cache

from aiohttp import web

from proxy.errors import ErrorType, GatewayError
from proxy.server.gate import refuse
from proxy.server.keys import STATE

PROBES = frozenset({"/healthz", "/readyz"})
OPS = frozenset({"/metrics", "/status", "/health/providers"})
UNAUTHORIZED = GatewayError(
    ErrorType.UNAUTHORIZED,
    "This gateway needs a token: send it as 'Authorization: Bearer <token>' or 'x-api-key'.",
    code="unauthorized",
)


def presented(headers: Mapping[str, str]) -> list[bytes]:
    """The credentials a request carries, as bytes (headers may hold any octets)."""
    found = []
    scheme, _, credential = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        found.append(credential.strip())
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    return [value.encode("utf-8", "surrogateescape") for value in found]


def accepted(candidates: Sequence[bytes], tokens: tuple[str, ...]) -> bool:
    """Whether any candidate equals any token, in time that reveals neither which nor how long.

    Every candidate is compared with every token, without stopping at a match, and the
    comparison is of SHA-256 digests, so it always runs over 32 bytes whatever the lengths.
    """
    ok = False
    for candidate in candidates:
        digest = hashlib.sha256(candidate).digest()
        for token in _digests(tokens):
            ok |= hmac.compare_digest(digest, token)
    return ok


@lru_cache(maxsize=4)
def _digests(tokens: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(hashlib.sha256(token.encode()).digest() for token in tokens)


def guarded(path: str, protect_ops: bool) -> bool:
    """Does ``path`` need a token when auth is on? Anything unlisted does (deny by default)."""
    if path in PROBES:
        return False
    return protect_ops or path not in OPS


def unauthorized(request: web.Request) -> web.Response | None:
    """A 401 in the client's dialect, unless auth is off, the path is open, or a token
    matches; None lets the request through."""
    settings = request.app[STATE].snapshot.server.auth
    if (
        settings.tokens
        and guarded(request.path, settings.protect_ops_endpoints)
        and not accepted(presented(request.headers), settings.tokens)
    ):
        return refuse(request, UNAUTHORIZED, {"www-authenticate": "Bearer"})
    return None
