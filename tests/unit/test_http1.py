"""The upstream HTTP/1.1 client (proxy.engine.http1 + connections) against scripted servers.

Each test runs a real asyncio server on 127.0.0.1 that reads one request at a time and answers
with the exact bytes the test scripts, so framing (length, chunked, until-close), encodings,
keep-alive, pool limits and TLS are checked on real sockets. Failure paths:
test_http1_faults.py.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl

import pytest
import trustme

from proxy.config.snapshot import PoolSettings
from proxy.engine.connections import ConnectFailed, UpstreamPool
from proxy.engine.http1 import HIGH_WATER
from tests.unit.http1_server import (
    JSON_OK,
    Server,
    canned,
    pool_for,
    post,
    run,
    serve,
    until,
)


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


@pytest.mark.parametrize("trusted", [True, False])
def test_https_verifies_the_upstream_certificate(trusted: bool):
    """TLS with SNI and hostname checks; a certificate nobody vouched for is a connect failure."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    if trusted:
        authority.configure_trust(client_context)

    async def main() -> None:
        server = Server(canned(JSON_OK))
        listener = await asyncio.start_server(server.handle, "localhost", 0, ssl=server_context)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            origin = f"https://localhost:{port}/v1"
            pool = UpstreamPool(origin, PoolSettings(), 2000, tls=client_context)
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


def test_a_host_name_is_resolved_and_its_addresses_raced():
    """A name goes through getaddrinfo and RFC 8305's race of its addresses (where
    ``localhost`` is also ::1, the refused address falls through to 127.0.0.1)."""

    async def main() -> None:
        server, listener = await serve(canned(JSON_OK))
        async with listener:
            pool = UpstreamPool(f"http://localhost:{server.port}", PoolSettings(), 1000)
            url = f"http://localhost:{server.port}/x"
            response = await pool.request("POST", url, {}, b"{}", 2.0, whole=True)
            assert response.status == 200
            await pool.close()

    run(main())


def test_drain_reads_a_late_closing_chunk_so_the_connection_is_reused():
    """The last event is read before the chunked terminator arrives (the server writes it
    later): drain() waits for it, so the connection goes back to the pool."""
    event_read = asyncio.Event()

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"e\r\ndata: [DONE]\n\n\r\n")
        await writer.drain()
        await event_read.wait()
        event_read.clear()
        writer.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            for _ in range(2):
                response = await post(pool, whole=False)
                assert await response.readany() == b"data: [DONE]\n\n"
                assert not response.complete
                event_read.set()
                await response.drain(2.0)
                assert response.complete
                response.release()
            assert server.connections == 1 and pool.connects == 1
            await pool.close()

    run(main())
