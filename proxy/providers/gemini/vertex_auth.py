"""Vertex AI access tokens from a service-account key file, with Google's own ``google-auth``.

One :class:`TokenSource` per key file and process, shared by every request and config
snapshot: the token is fetched once (concurrent requests wait on the same fetch), reused until
``REFRESH_MARGIN_S`` before it expires, and fetched again when the file changes (a rotated
Kubernetes secret), checked at most once a second. google-auth is synchronous (``requests``),
so the fetch runs in a worker thread and never blocks the event loop; the token endpoint is the
key file's ``token_uri``. Errors: the endpoint refusing (400/401/403: a revoked or wrong key)
is ``invalid_api_key``; an unreachable endpoint or a 5xx after google-auth's own retries is a
retryable ``http_error``; an unreadable key file is ``invalid_api_key`` naming the file.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from proxy.errors import ErrorType, GatewayError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_S = 300.0
"""A token this close to its expiry is replaced before use (google-auth's own is ~4 min)."""
STAT_EVERY_S = 1.0
FETCH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # epoch seconds
    stamp: tuple[int, int, int]  # the key file's (inode, size, mtime_ns) when it was read


def _stamp(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def fetch_token(path: str, timeout_s: float = FETCH_TIMEOUT_S) -> Token:
    """Blocking: read the key file and exchange a signed JWT for a token (google-auth)."""
    import google.auth.exceptions as gexc  # imported on first use: no cost without Vertex
    import google.auth.transport.requests as greq
    from google.oauth2 import service_account

    stamp = _stamp(path)
    try:
        creds: Any = service_account.Credentials.from_service_account_file(path, scopes=[SCOPE])
    except (OSError, ValueError, KeyError) as exc:
        raise GatewayError(
            ErrorType.INVALID_API_KEY,
            f"The Vertex AI credentials_file {path} could not be read as a service-account "
            f"key ({type(exc).__name__}).",
        ) from None
    request = greq.Request()
    try:
        creds.refresh(lambda *a, **k: request(*a, **{**k, "timeout": timeout_s}))
    except gexc.RefreshError as exc:
        if getattr(exc, "retryable", False):
            raise _unreachable(f"the token endpoint kept failing ({_reason(exc)})") from None
        raise GatewayError(
            ErrorType.INVALID_API_KEY,
            f"The Vertex AI token endpoint refused the service account ({_reason(exc)}).",
        ) from None
    except gexc.TransportError as exc:
        raise _unreachable(f"could not reach the token endpoint ({type(exc).__name__})") from None
    expiry = creds.expiry.replace(tzinfo=UTC).timestamp() if creds.expiry else time.time() + 3600
    return Token(str(creds.token), expiry, stamp)


def _reason(exc: BaseException) -> str:
    """The OAuth error code, never the response body (which could echo the assertion)."""
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, Mapping) and data.get("error"):
        return str(data["error"])
    return type(exc).__name__


def _unreachable(message: str) -> GatewayError:
    return GatewayError(
        ErrorType.HTTP_ERROR,
        f"No Vertex AI access token: {message}.",
        retryable=True,
        counts_against_provider=True,
    )


class TokenSource:
    """The access token of one key file, fetched once and shared (single flight)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fetches = 0
        self._token: Token | None = None
        self._pending: asyncio.Future[Token] | None = None
        self._checked_at = 0.0

    def _fresh(self) -> bool:
        token = self._token
        if token is None or token.expires_at - time.time() <= REFRESH_MARGIN_S:
            return False
        now = time.monotonic()
        if now - self._checked_at >= STAT_EVERY_S:
            self._checked_at = now
            if _stamp(self.path) != token.stamp:
                return False
        return True

    async def headers(self) -> Mapping[str, str]:
        """``Authorization`` for one request."""
        if not self._fresh():
            pending = self._pending
            if pending is None or pending.done() or pending.get_loop() is not _loop():
                pending = self._pending = asyncio.ensure_future(self._refresh())
            await asyncio.shield(pending)
        assert self._token is not None
        return {"authorization": f"Bearer {self._token.value}"}

    def invalidate(self) -> None:
        """Vertex refused the token (revoked early): the next request fetches a new one."""
        self._token = None

    async def _refresh(self) -> Token:
        self.fetches += 1
        token = await asyncio.to_thread(fetch_token, self.path)
        self._token = token
        self._checked_at = time.monotonic()
        return token


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


_SOURCES: dict[str, TokenSource] = {}


def token_source(path: str) -> TokenSource:
    """The process's source for ``path`` (kept across config reloads)."""
    source = _SOURCES.get(path)
    if source is None:
        source = _SOURCES[path] = TokenSource(path)
    return source
