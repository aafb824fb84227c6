"""Stream timing at concurrency 1: time to first byte, to first SSE event, and to the end.

    python tests/bench/ttft.py --url http://127.0.0.1:8787/v1/chat/completions \\
        --body stream_openai.json --count 300 [--warmup 20] [--header 'k: v']

wrk cannot see inside a response, so this is a minimal raw-socket HTTP/1.1 client (one
keep-alive connection, chunked or content-length bodies) that timestamps the first response
byte, the first ``data:`` of the body, and the end of the body. Prints one JSON object;
stdlib only, uvloop if importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99 and the mean, in the same unit as ``values``."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


class Body:
    """Incremental decoder of one response body (chunked or content-length)."""

    def __init__(self, headers: dict[bytes, bytes]) -> None:
        self.chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
        self.left = int(headers.get(b"content-length", b"0"))
        self.raw = b""
        self.data = bytearray()
        self.done = not self.chunked and self.left == 0

    def feed(self, chunk: bytes) -> None:
        if not self.chunked:
            self.data += chunk
            self.left -= len(chunk)
            self.done = self.left <= 0
            return
        self.raw += chunk
        while not self.done:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                return
            self.data += self.raw[line_end + 2 : line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2 :]
            self.done = size == 0


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes, float]:
    buf = b""
    first = 0.0
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        first = first or time.perf_counter()
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(b" ", 2)[1]), headers, rest, first


async def one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> dict[str, float | int | bool]:
    """Send one request on the open connection; timings in ms from the request's write."""
    t0 = time.perf_counter()
    writer.write(request)
    status, headers, rest, first = await _head(reader)
    body = Body(headers)
    first_event = 0.0
    chunk = rest
    while True:
        if chunk:
            body.feed(chunk)
            if not first_event and b"data:" in body.data:
                first_event = time.perf_counter()
        if body.done:
            break
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("server closed the connection mid-body")
    end = time.perf_counter()
    return {
        "status": status,
        "ttfb": (first - t0) * 1000,
        "ttft": ((first_event or end) - t0) * 1000,
        "total": (end - t0) * 1000,
        "close": headers.get(b"connection", b"").lower() == b"close",
    }


def build_request(url: str, body: bytes, extra: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        "\r\n".join(head).encode() + b"\r\n\r\n" + body,
    )


async def measure(url: str, body: bytes, count: int, warmup: int, extra: list[str]) -> dict:
    host, port, request = build_request(url, body, extra)
    samples: list[dict] = []
    statuses: dict[str, int] = {}
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(warmup + count):
            result = await one(reader, writer, request)
            statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
            if i >= warmup:
                samples.append(result)
            if result["close"]:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
    ok = [s for s in samples if s["status"] == 200]
    return {
        "count": len(samples),
        "ok": len(ok),
        "statuses": statuses,
        **{f"{key}_ms": percentiles([s[key] for s in ok]) for key in ("ttfb", "ttft", "total")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    coro = measure(args.url, args.body.read_bytes(), args.count, args.warmup, args.header)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
