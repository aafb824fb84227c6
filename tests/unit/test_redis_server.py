"""The test helper itself: a real server that answers, dies when killed, and comes back."""

from __future__ import annotations

import socket

from tests.redis_server import RedisServer


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_start_kill_restart_on_the_same_port() -> None:
    server = RedisServer().start()
    try:
        assert _ping(server.port) == b"+PONG\r\n"
        server.kill()
        try:
            _ping(server.port)
        except OSError:
            pass
        else:
            raise AssertionError("redis still answers after kill()")
        server.start()
        assert _ping(server.port) == b"+PONG\r\n"
    finally:
        server.stop()
