"""The upstream HTTP/1.1 client's failure paths against scripted servers: cut, malformed,
slow, reset, refused and stale connections; each raises, and the connection is dropped."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from proxy.config.snapshot import PoolSettings
from proxy.engine.connections import ConnectFailed, UpstreamPool
from proxy.engine.http1 import HIGH_WATER, BadResponse, UpstreamDisconnected, encode_head
from tests.unit.http1_server import (
    JSON_OK,
    Server,
    canned,
    pool_for,
    post,
    reset,
    run,
    serve,
    until,
)

FAULTS = {
    "cut body": (b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial', UpstreamDisconnected),
    "closed before answering": (b"", UpstreamDisconnected),
    "not http": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", BadResponse),
    "bad chunk": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", BadResponse),
    "brotli": (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nxx",
        BadResponse,
    ),
    "gzip truncated": (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 10\r\n\r\n"
        + gzip.compress(b"{}" * 500)[:10],
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


def test_a_second_response_in_the_same_read_is_refused_and_the_first_kept():
    data = JSON_OK + b"HTTP/1.1 503 Busy\r\ncontent-length: 40\r\n\r\nstale-"

    async def main() -> None:
        server, listener = await serve(canned(data))
        async with listener:
            pool = pool_for(server)
            response = await post(pool)
            assert (response.status, response.body) == (200, b'{"ok":true}')
            await until(lambda: pool.open_count == 0)  # that connection is not reused
            await pool.close()

    run(main())


def test_an_error_status_on_a_stream_request_is_read_whole_past_the_high_water_mark():
    big = b'{"error":"' + b"x" * (2 * HIGH_WATER) + b'"}'
    head = b"HTTP/1.1 500 Oops\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"

    async def main() -> None:
        server, listener = await serve(canned(head % len(big) + big))
        async with listener:
            pool = pool_for(server)
            response = await post(pool, whole=False)
            assert response.status == 500 and await response.read() == big
            response.release()
            await pool.close()

    run(main())


def test_a_reset_cuts_a_close_delimited_body_instead_of_ending_it():
    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"partial')
        await writer.drain()
        reset(writer)
        return False

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            with pytest.raises(UpstreamDisconnected):
                await post(pool)
            await pool.close()

    run(main())


def test_a_request_on_a_connection_the_server_just_closed_goes_out_again_on_a_new_one():
    """The server's keep-alive ran out as we reused its connection: it closed without a byte
    of response (here: right after reading the request), so the request is sent once more on
    a fresh connection instead of failing."""

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # close, answering nothing
        writer.write(JSON_OK)
        await writer.drain()
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            first = await post(pool)
            second = await post(pool)  # reuses the idle connection, which then closes
            assert first.status == second.status == 200
            assert server.connections == 2 and len(server.requests) == 3
            assert pool.connects == 2
            await pool.close()

    run(main())


def test_a_reset_on_a_reused_connection_is_the_attempts_failure_not_resent():
    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 2:  # a crash, not a keep-alive timeout: RST, and the request may have run
            reset(writer)
            return False
        writer.write(JSON_OK)
        await writer.drain()
        return True

    async def main() -> None:
        server, listener = await serve(answer)
        async with listener:
            pool = pool_for(server)
            await post(pool)
            with pytest.raises(UpstreamDisconnected):
                await post(pool)
            assert len(server.requests) == 2 and pool.connects == 1
            await pool.close()

    run(main())
