"""The upstream HTTP/1.1 client (proxy.engine.http1 + connections) against scripted servers.

Each test runs a real asyncio server on 127.0.0.1 that reads one request at a time and answers
with the exact bytes the test scripts, so framing (length, chunked, until-close), encodings,
keep-alive, pool limits and every failure path are checked on real sockets.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme

from proxy.config.snapshot import PoolSettings
from proxy.engine.connections import ConnectFailed, UpstreamPool
from proxy.engine.http1 import HIGH_WATER, BadResponse, UpstreamDisconnected, encode_head

JSON_OK = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)
Answer = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer to request number n; returns False to close the connection after it."""


@dataclass
class Server:
    answer: Answer
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                if not await self.answer(len(self.requests), reader, writer):
                    break
            writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
        finally:
            self.open_now -= 1


async def serve(answer: Answer) -> tuple[Server, asyncio.Server]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    return server, listener


def canned(data: bytes, keep: bool = True) -> Answer:
    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return answer


def pool_for(server: Server, **settings: float) -> UpstreamPool:
    return UpstreamPool(f"http://127.0.0.1:{server.port}/v1", PoolSettings(**settings), 1000)  # type: ignore[arg-type]


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def post(pool: UpstreamPool, timeout: float = 2.0, *, whole: bool = True, **headers: str):  # type: ignore[no-untyped-def]
    url = f"{pool.origin.prefix}/v1/chat/completions"
    return pool.request("POST", url, {"x-test": "1", **headers}, b'{"a":1}', timeout, whole=whole)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_request_bytes_and_keep_alive_reuse():
    async def main() -> None:
        server, listener = await serve(canned(JSON_OK))
        async with listener:
            pool = pool_for(server)
            for _ in range(3):
                response = await post(pool)
                assert (response.status, response.body) == (200, b'{"ok":true}')
                assert response.content_type == "application/json"
            assert server.connections == 1 and pool.open_count == 1
            head = server.requests[0].decode()
            assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
            assert f"host: 127.0.0.1:{server.port}\r\n" in head
            assert "accept-encoding: identity\r\n" in head and "x-test: 1\r\n" in head
            assert head.endswith('content-length: 7\r\n\r\n{"a":1}')
            await pool.close()

    run(main())


def test_chunked_stream_is_read_piece_by_piece_and_the_connection_reused():
    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            for _ in range(2):
                response = await post(pool, whole=False)
                assert response.content_type == "text/event-stream"
                got = b""
                while chunk := await response.readany():
                    got += chunk
                assert got == b"data: 1\n\ndata: 2\n\n"
                response.release()
            assert server.connections == 1
            await pool.close()

    run(main())


def test_body_delimited_by_close_is_complete_and_not_reused():
    answer = canned(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}", keep=False)

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            assert (await post(pool)).body == b"{}"
            assert (await post(pool)).body == b"{}"
            assert server.connections == 2
            await pool.close()

    run(main())


@pytest.mark.parametrize("whole", [True, False])
def test_gzip_bodies_are_decoded(whole: bool):
    packed = gzip.compress(b'{"hello":"world"}' * 100)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)

    async def main() -> None:
        server, listener = await serve(canned(head + packed))
        async with listener:
            pool = pool_for(server)
            response = await post(pool, whole=whole)
            if whole:
                body = response.body
            else:
                body = b""
                while chunk := await response.readany():
                    body += chunk
                response.release()
            assert body == b'{"hello":"world"}' * 100
            await pool.close()

    run(main())


def test_connection_close_header_is_honoured():
    answer = canned(JSON_OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"), keep=False)

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            await post(pool)
            await post(pool)
            assert server.connections == 2
            await until(lambda: pool.open_count == 0)
            await pool.close()

    run(main())


FAULTS = {
    "cut body": (b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial', UpstreamDisconnected),
    "closed before answering": (b"", UpstreamDisconnected),
    "not http": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", BadResponse),
    "bad chunk": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", BadResponse),
    "brotli": (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nxx",
        BadResponse,
    ),
    "gzip garbage": (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\nxx",
        BadResponse,
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_raise_and_the_connection_is_dropped(fault: str):
    data, error = FAULTS[fault]

    async def main() -> None:
        server, listener = await serve(canned(data, keep=False))
        async with listener:
            pool = pool_for(server)
            with pytest.raises(error):
                await post(pool)
            await until(lambda: pool.open_count == 0)
            await pool.close()

    run(main())


def test_a_stream_cut_midway_hands_out_what_arrived_then_fails():
    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        return False

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            response = await post(pool, whole=False)
            assert await response.readany() == b"hello"
            with pytest.raises(UpstreamDisconnected):
                await response.readany()
            response.close()
            await until(lambda: pool.open_count == 0)
            await pool.close()

    run(main())


def test_slow_first_byte_times_out_and_closes_the_connection():
    gate = asyncio.Event()
    server = Server(canned(b""))

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if not await reader.read():  # the client gave up and closed the connection
            server.closed_by_client += 1
        await gate.wait()
        return False

    async def main() -> None:
        nonlocal server
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            with pytest.raises(TimeoutError):
                await post(pool, timeout=0.05)
            assert pool.open_count == 0
            await until(lambda: server.closed_by_client == 1)
            gate.set()
            await pool.close()

    run(main())


def test_max_connections_makes_requests_wait_for_a_free_one():
    release = asyncio.Event()

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await release.wait()
        writer.write(JSON_OK)
        await writer.drain()
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server, max_connections=1)
            first = asyncio.create_task(post(pool))
            await until(lambda: len(server.requests) == 1)
            second = asyncio.create_task(post(pool))
            with pytest.raises(TimeoutError):  # waits for the busy connection, within its deadline
                await post(pool, timeout=0.05)
            release.set()
            assert (await first).status == (await second).status == 200
            assert server.connections == server.most_open == 1
            await pool.close()

    run(main())


def test_idle_connections_are_capped_and_expire():
    async def main() -> None:
        server, listener = await serve(canned(JSON_OK))
        async with listener:
            pool = pool_for(server, max_idle_per_host=0)
            await post(pool)
            await post(pool)
            assert server.connections == 2  # none kept idle
            await until(lambda: pool.open_count == 0)
            pool = pool_for(server, idle_timeout_s=0.05)
            await post(pool)
            assert pool.open_count == 1
            await until(lambda: pool.open_count == 0 and server.open_now == 0)
            await pool.close()

    run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async def main() -> None:
        server, listener = await serve(canned(JSON_OK, keep=False))
        async with listener:
            pool = pool_for(server)
            await post(pool)  # keep-alive response, but the server then closes the socket
            await until(lambda: pool.open_count == 0)
            assert (await post(pool)).status == 200
            assert server.connections == 2
            await pool.close()

    run(main())


def test_informational_responses_are_skipped():
    data = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + JSON_OK

    async def main() -> None:
        server, listener = await serve(canned(data))
        async with listener:
            pool = pool_for(server)
            response = await post(pool)
            assert (response.status, response.body) == (200, b'{"ok":true}')
            assert "link" not in response.headers
            await pool.close()

    run(main())


def test_cancelling_a_request_closes_its_connection():
    server = Server(canned(b""))

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if not await reader.read():
            server.closed_by_client += 1
        return False

    async def main() -> None:
        nonlocal server
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            task = asyncio.create_task(post(pool))
            await until(lambda: len(server.requests) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.open_count == 0
            await until(lambda: server.closed_by_client == 1)
            await pool.close()

    run(main())


def test_slow_readers_pause_the_socket_and_get_every_byte():
    blob = bytes(range(256)) * 16 * 1024  # 4 MiB

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(blob))
        writer.write(blob)
        await writer.drain()
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            response = await post(pool, whole=False)
            got, biggest = [], 0
            while chunk := await response.readany():
                got.append(chunk)
                biggest = max(biggest, len(chunk))
                for _ in range(3):
                    await asyncio.sleep(0)  # let more arrive than is read
            response.release()
            assert b"".join(got) == blob
            assert biggest < HIGH_WATER + 512 * 1024  # buffered up to the mark, then paused
            await pool.close()

    run(main())


def test_refused_connections_and_header_injection():
    async def main() -> None:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        pool = UpstreamPool(f"http://127.0.0.1:{port}", PoolSettings(), 1000)
        with pytest.raises(ConnectFailed):
            await pool.request("POST", f"http://127.0.0.1:{port}/x", {}, b"", 1.0, whole=True)
        assert pool.open_count == 0

    run(main())
    with pytest.raises(ValueError, match="line break"):
        encode_head("POST", "/x", "h", {"authorization": "Bearer k\r\nx-evil: 1"}, 0)
    with pytest.raises(ValueError):
        UpstreamPool("ftp://example.com", PoolSettings(), 1000)


@pytest.mark.parametrize("trusted", [True, False])
def test_https_verifies_the_upstream_certificate(trusted: bool, monkeypatch: pytest.MonkeyPatch):
    """TLS with SNI and hostname checks; a certificate nobody vouched for is a connect failure."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    if trusted:
        authority.configure_trust(client_context)
    monkeypatch.setattr("proxy.engine.connections._ssl_context", lambda: client_context)

    async def main() -> None:
        server = Server(canned(JSON_OK))
        listener = await asyncio.start_server(server.handle, "localhost", 0, ssl=server_context)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            pool = UpstreamPool(f"https://localhost:{port}/v1", PoolSettings(), 2000)
            url = f"https://localhost:{port}/v1/chat/completions"
            if trusted:
                response = await pool.request("POST", url, {}, b"{}", 2.0, whole=True)
                assert (response.status, response.body) == (200, b'{"ok":true}')
                assert f"host: localhost:{port}\r\n" in server.requests[0].decode()
            else:
                with pytest.raises(ConnectFailed, match="SSLCertVerificationError"):
                    await pool.request("POST", url, {}, b"{}", 2.0, whole=True)
            await pool.close()

    run(main())
