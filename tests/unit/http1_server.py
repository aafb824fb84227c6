"""A scripted HTTP/1.1 server for the upstream client's tests (test_http1*.py).

It reads one request at a time on a real socket on 127.0.0.1 and answers with the exact
bytes a test scripts, so framing, keep-alive, pool limits and faults are all real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.config.snapshot import PoolSettings
from proxy.engine.connections import UpstreamPool
from proxy.sim.faults import abort_with_rst

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


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST, not a FIN: a crashed server."""
    abort_with_rst(writer.transport)
