"""A raw-asyncio fake vendor upstream: canned bodies (benchlib.bodies), keep-alive, uvloop.

    python tests/bench/fake_upstream.py --port 9100 [--chunk-delay-ms 400]

The alternative to nginx as the benchmark's upstream (``run.py --upstream asyncio``; nginx is
the default because it is faster, see RESULTS.md). With ``--chunk-delay-ms`` the stream routes
send one event per chunk with that pause between events (chunked encoding), which is what the
soak and the 1,000-open-streams measurement need: streams that stay open. Request bodies are
read and discarded; chunked request bodies are not supported (411).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.bodies import ROUTES, responses

_NOT_FOUND = b'{"error":{"message":"no such route","type":"invalid_request_error","code":null}}'


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nx-request-id: req_bench_0001\r\n\r\n"
    )
    return head.encode() + body


def build_routes() -> dict[bytes, tuple[bytes, bytes, bytes]]:
    """path -> (full response bytes, content type, body)."""
    canned = responses()
    table = {}
    for path, (name, content_type) in ROUTES.items():
        body = canned[name]
        table[path.encode()] = (
            _response("200 OK", content_type, body),
            content_type.encode(),
            body,
        )
    return table


def azure_as_openai(path: bytes) -> bytes:
    """Azure's deployment and v1 paths answer as OpenAI's (vendor_overhead.py compares them)."""
    head, sep, _ = path.partition(b"/openai/")
    if sep and path.endswith(b"/chat/completions"):
        return head + b"/v1/chat/completions"
    return path


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse request heads, skip bodies, write the canned answer."""

    def __init__(self, routes: dict[bytes, tuple[bytes, bytes, bytes]], delay_s: float) -> None:
        self.routes = routes
        self.delay_s = delay_s
        self.buf = bytearray()
        self.need = 0  # bytes of the current request (head + body) once its head is parsed
        self.path = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._process()

    def _process(self) -> None:
        while not self.busy and self.transport is not None:
            if not self.need and not self._parse_head():
                return
            if len(self.buf) < self.need:
                return
            del self.buf[: self.need]
            self.need = 0
            self._answer(self.path)

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        if b"\r\ntransfer-encoding: chunked" in head:
            self.transport.write(_response("411 Length Required", "text/plain", b""))
            self.transport.close()
            return False
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        self.path = head.split(b" ", 2)[1].split(b"?", 1)[0]
        self.need = end + 4 + length
        return True

    def _answer(self, path: bytes) -> None:
        route = self.routes.get(path) or self.routes.get(azure_as_openai(path))
        if route is None:
            self.transport.write(_response("404 Not Found", "application/json", _NOT_FOUND))
        elif self.delay_s > 0 and path.startswith(b"/stream/"):
            self.busy = True
            asyncio.get_running_loop().create_task(self._stream(route[1], route[2]))
        else:
            self.transport.write(route[0])

    async def _stream(self, content_type: bytes, body: bytes) -> None:
        """Send ``body`` one SSE event per chunk, pausing between events."""
        head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type
        head += b"\r\ntransfer-encoding: chunked\r\nx-request-id: req_bench_0001\r\n\r\n"
        events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
        with contextlib.suppress(AttributeError):  # transport gone: the client hung up
            self.transport.write(head)
            for event in events:
                self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))
                await asyncio.sleep(self.delay_s)
            self.transport.write(b"0\r\n\r\n")
        self.busy = False
        self._process()


async def serve(host: str, port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    routes = build_routes()
    server = await loop.create_server(
        lambda: UpstreamProtocol(routes, delay_ms / 1000), host, port, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.host, args.port, args.chunk_delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
