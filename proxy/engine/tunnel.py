"""A ``CONNECT`` tunnel through a forward proxy, opened on a connected socket before TLS.

The handshake runs on the raw socket (``loop.sock_sendall``/``sock_recv``); the pool then
starts TLS on the same socket with the upstream's name (SNI and certificate checks are the
upstream's, end to end), so a tunnelled connection is pooled and reused like a direct one.
"""

from __future__ import annotations

import asyncio
import socket

from proxy.config.egress import Proxy

MAX_HEAD = 16 * 1024
"""A proxy's answer to CONNECT longer than this (headers) is refused."""


class ProxyFailed(ConnectionError):
    """The proxy could not be used: unreachable, refused the tunnel (407, 502, ...). The
    message names the proxy as ``http://host:port``, never with its credentials."""


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def open_tunnel(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Proxy, host: str, port: int
) -> None:
    """Ask ``proxy`` (``sock`` is connected to it) for a tunnel to ``host:port``; returns once
    the proxy answered 2xx, raises :class:`ProxyFailed` otherwise."""
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"host: {target}"]
    if proxy.authorization:
        lines.append(f"proxy-authorization: {proxy.authorization}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ProxyFailed(f"the proxy {proxy.shown} closed the connection during CONNECT")
        head += chunk
        if len(head) > MAX_HEAD:
            raise ProxyFailed(f"the proxy {proxy.shown} answered CONNECT with oversized headers")
    status_line = head.partition(b"\r\n")[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if not 200 <= status < 300:
        reason = parts[2][:80] if len(parts) > 2 else ""
        raise ProxyFailed(
            f"the proxy {proxy.shown} refused CONNECT {target}: HTTP {status} {reason}".rstrip()
        )
