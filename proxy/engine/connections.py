"""The keep-alive connections to one provider's origin, with the contract's pool limits.

``pool`` settings mean: at most ``max_connections`` open at once (more requests wait for one,
bounded by their own deadline), at most ``max_idle_per_host`` kept idle for reuse (``0`` closes
each after its request), idle ones closed after ``idle_timeout_s``, TCP keep-alive probes after
``tcp_keepalive_s``, and each TCP (and TLS) connect bounded by ``timeouts.connect_ms``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohappyeyeballs

from proxy.config.egress import Proxy, default_tls_context
from proxy.config.snapshot import PoolSettings
from proxy.engine.http1 import Connection, Response, UpstreamDisconnected, encode_head
from proxy.engine.tunnel import ProxyFailed, open_tunnel

ACCEPT_IDENTITY = {"accept-encoding": "identity"}
"""Asked of every upstream unless the config's headers say otherwise: compressed SSE can be
buffered by the vendor's edge, and JSON bodies of a few KB gain little from gzip. A body that
comes compressed anyway is decoded (gzip, deflate)."""


class ConnectFailed(ConnectionError):
    """No connection to the upstream could be opened (refused, unresolvable, TLS failure)."""


HAPPY_EYEBALLS_S = 0.25
"""RFC 8305's connection attempt delay: with IPv6 and IPv4 addresses, the next address is
tried this long after the previous one, so a black-holed IPv6 route does not eat the whole
connect budget (uvloop's create_connection has no happy_eyeballs_delay of its own)."""


async def _open_socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected TCP socket to ``host:port``: resolve, then race its addresses."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=HAPPY_EYEBALLS_S, interleave=1, loop=loop
    )


class Origin:
    """Where a pool connects: scheme, host, port, and the Host header it sends."""

    __slots__ = ("host", "host_header", "port", "prefix", "tls")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.prefix = f"{parts.scheme}://{parts.netloc}"

    def target(self, url: str) -> str:
        """The request target (path and query) of ``url``, which must be on this origin."""
        if not url.startswith(self.prefix):
            raise ValueError("the request URL is not on the pool's origin")
        return url[len(self.prefix) :] or "/"


class UpstreamPool:
    """Connections to one origin: reused most-recently-used first, capped, expired when idle.

    With a ``proxy``, every connection goes to the proxy: an https origin through a CONNECT
    tunnel (TLS to the origin inside it), an http one with absolute-form requests. Either way
    the connections are pooled like direct ones; without a proxy nothing here changes.
    """

    def __init__(
        self,
        base_url: str,
        settings: PoolSettings,
        connect_ms: int,
        *,
        proxy: Proxy | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = origin = Origin(base_url)
        self.proxy = proxy
        self._tls = (tls or default_tls_context()) if origin.tls else None
        self._dial = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
        self._absolute = proxy is not None and not origin.tls  # absolute-form request targets
        self._proxy_headers = (
            {"proxy-authorization": proxy.authorization}
            if self._absolute and proxy is not None and proxy.authorization
            else None
        )
        self._settings = settings
        self._connect_s = connect_ms / 1000
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False
        self.connects = 0  # connections opened so far: reuse shows as this staying put

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        *,
        whole: bool,
    ) -> Response:
        """Send a request; returns once the head (or, ``whole``, the entire response) is in.

        ``timeout_s`` bounds everything from here: the wait for a connection, the connect,
        and the response. A ``whole`` response has its ``body`` and its connection is back in
        the pool; otherwise the caller reads the body and must ``release()`` or ``close()``.
        """
        headers = headers if "accept-encoding" in headers else {**ACCEPT_IDENTITY, **headers}
        target = self.origin.target(url)
        if self._absolute:  # an http origin through a proxy
            target = self.origin.prefix + target
            if self._proxy_headers:
                headers = {**headers, **self._proxy_headers}
        head = encode_head(method, target, self.origin.host_header, headers, len(body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self._take_idle()
        response: Response | None = None
        if conn is not None:
            try:
                response = await self._exchange(conn, head, body, timeout_s, whole)
            except UpstreamDisconnected as exc:
                if not exc.before_response:
                    raise
                # The server closed this idle connection as we reused it (its keep-alive
                # timeout ran out first) and answered nothing: send it once more, on a new
                # connection. A reset, or any byte of a response, is the attempt's failure.
        if response is None:
            conn = await self._acquire(loop, deadline, reuse=conn is None)
            remaining = max(deadline - loop.time(), 0.0)
            response = await self._exchange(conn, head, body, remaining, whole)
        return response

    async def _exchange(
        self, conn: Connection, head: bytes, body: bytes, timeout_s: float, whole: bool
    ) -> Response:
        response = conn.send(head, body, whole)
        response.set_deadline(timeout_s)
        try:
            if whole:
                response.body = await response.read()
            else:
                await response.wait_head()
        except Exception:
            response.close()
            if self._absolute and response.status == 407:  # the proxy refused, then hung up
                raise self._proxy_refused() from None
            raise
        except BaseException:
            response.close()
            raise
        if self._absolute and response.status == 407:
            response.close()
            raise self._proxy_refused()
        if whole:
            response.release()
        return response

    def _proxy_refused(self) -> ProxyFailed:
        shown = self.proxy.shown if self.proxy is not None else "?"
        return ProxyFailed(f"the proxy {shown} refused the request: HTTP 407 (authentication)")

    def _take_idle(self) -> Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, deadline: float, *, reuse: bool = True
    ) -> Connection:
        """A connection: an idle one (if ``reuse``), a new one while under
        ``max_connections``, else the next released."""
        while True:
            if reuse and (conn := self._take_idle()) is not None:
                return conn
            if self.closed:
                raise ConnectFailed("the provider's connection pool is closed")
            if len(self._open) + self._connecting < self._settings.max_connections:
                return await self._connect(loop, deadline)
            waiter: asyncio.Future[Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():  # woken just as we gave up:
                    handed = waiter.result()  # pass on what we were given
                    if handed is not None:
                        self._put_back(handed)
                    else:
                        self._wake_waiter()
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if conn is not None and not conn.closed:
                return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        origin = self.origin
        self._connecting += 1
        try:
            async with asyncio.timeout(min(self._connect_s, max(deadline - loop.time(), 0.0))):
                sock = await self._socket(loop)
                try:
                    _, conn = await loop.create_connection(
                        lambda: Connection(loop, self._finished),
                        sock=sock,
                        ssl=self._tls,
                        server_hostname=origin.host if origin.tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except BaseException as exc:
            self._connecting -= 1
            self._wake_waiter()  # a failed connect frees a slot for someone else
            if isinstance(exc, ProxyFailed):
                raise
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
                raise ConnectFailed(f"{type(exc).__name__}: {exc.strerror or exc}") from None
            raise
        self._connecting -= 1
        self.connects += 1
        self._tune(conn)
        self._open.add(conn)
        return conn

    async def _socket(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A TCP socket to the origin, or to the proxy (tunnelled to an https origin)."""
        proxy = self.proxy
        if proxy is None:
            return await _open_socket(loop, *self._dial)
        try:
            sock = await _open_socket(loop, *self._dial)
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            detail = f"{type(exc).__name__}: {exc.strerror or exc}"
            raise ProxyFailed(f"could not connect to the proxy {proxy.shown} ({detail})") from None
        if self.origin.tls:
            try:
                await open_tunnel(loop, sock, proxy, self.origin.host, self.origin.port)
            except BaseException:
                sock.close()
                raise
        return sock

    def _tune(self, conn: Connection) -> None:
        sock = conn.socket()
        if sock is None:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(int(self._settings.tcp_keepalive_s), 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(idle // 4, 1))

    def _finished(self, conn: Connection, reusable: bool) -> None:
        """A connection's exchange ended (or it closed while idle): reuse it or forget it."""
        if reusable and not self.closed and conn in self._open:
            self._put_back(conn)
            return
        if conn in self._open:
            self._open.discard(conn)
            conn.close()
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake_waiter()  # a slot is free: the next waiter may connect

    def _put_back(self, conn: Connection) -> None:
        if conn.closed or conn not in self._open:  # lost meanwhile: already accounted for
            self._wake_waiter()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if len(self._idle) >= self._settings.max_idle_per_host:
            self._finished(conn, False)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        if self._sweeper is None:
            self._schedule_sweep(self._settings.idle_timeout_s)

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # no connection handed over: it may open one
                return

    def _schedule_sweep(self, delay: float) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(max(delay, 0.01), self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for ``idle_timeout_s``; run again while any stay idle."""
        self._sweeper = None
        now = time.monotonic()
        limit = self._settings.idle_timeout_s
        expired = [c for c in self._idle if c.closed or now - c.idle_since >= limit]
        for conn in expired:
            self._idle.remove(conn)
            self._finished(conn, False)
        if self._idle:
            oldest = min(c.idle_since for c in self._idle)
            self._schedule_sweep(oldest + limit - now)

    async def close(self) -> None:
        """Close every connection; requests still reading theirs see the connection drop."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks
