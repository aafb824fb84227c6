"""A lean HTTP/1.1 client connection for the upstream leg: one asyncio protocol per socket.

Why not aiohttp's client: per request it builds a URL object, merged case-insensitive header
maps, request, response, payload and timer objects; measured side by side on this machine it
spends ~65 us of CPU per request where this module spends ~13 (tests/bench/RESULTS.md). Here a
request is one ``transport.write``, the response is parsed by httptools (llhttp, the parser
uvicorn uses) and the waiting task is woken once: when the whole body is in, or, for a stream,
when the head is in and then once per read.

A connection serves one exchange at a time and is reused only when the response was read to
its end and the server allows keep-alive. The pool that owns it (:mod:`proxy.engine.connections`)
decides when to open, reuse and close connections.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import httptools

HIGH_WATER = 256 * 1024
"""Unread stream bytes beyond which the socket stops being read (the client is slow)."""
MAX_BODY = 128 * 1024 * 1024
"""A non-streaming response body larger than this is refused rather than held in memory."""


class UpstreamDisconnected(ConnectionError):
    """The connection closed before the response was complete. ``before_response``: it was
    closed cleanly (FIN, not a reset) before one byte of a response arrived: on a reused
    connection, the server's keep-alive timeout closing it just as we reused it."""

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response


class BadResponse(Exception):
    """The upstream's bytes are not a response we can read (malformed, unsupported coding)."""


def encode_head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int
) -> bytes:
    """The request line and headers. A header value with a line break is refused: it would let
    a value (a key from the environment, a header from the config) inject headers."""
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"content-length: {length}")
    text = "\r\n".join(lines)
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise ValueError("an upstream request header contains a line break")
    return (text + "\r\n\r\n").encode()


class Response:
    """One upstream response as it arrives: status and headers first, then the body.

    Header names are lower-cased ``str`` keys (repeated headers joined with ", "). Exactly one
    of ``release()`` (read to the end: the connection may be reused) or ``close()`` ends it.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_decoder",
        "_error",
        "_paused",
        "_size",
        "_timer",
        "_waiter",
        "body",
        "complete",
        "headers",
        "keep_alive",
        "started",
        "status",
        "whole",
    )

    def __init__(self, conn: Connection, whole: bool) -> None:
        self._conn = conn
        self.whole = whole  # wake the reader only once the whole body is in
        self.status = 0
        self.started = False  # a byte of the response arrived
        self.headers: dict[str, str] = {}
        self.complete = False
        self.keep_alive = False
        self.body = b""  # the whole body, once read by the pool for a ``whole`` request
        self._chunks: list[bytes] = []
        self._size = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._decoder: Any = None
        self._paused = False

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type", "application/octet-stream")
        return value.partition(";")[0].strip().lower()

    def set_deadline(self, timeout_s: float | None) -> None:
        """Fail the exchange (TimeoutError) and drop the connection ``timeout_s`` from now;
        ``None`` clears the deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_s is not None:
            self._timer = self._conn.loop.call_later(timeout_s, self._expire)

    async def wait_head(self) -> None:
        while self.status == 0:
            await self._wait()

    async def read(self) -> bytes:
        """The whole (decoded) body (a stream's too: say an error status's JSON)."""
        if not self.whole:  # from here on the body is collected, capped by MAX_BODY, not paused
            self.whole = True
            if self._paused:
                self._paused = False
                self._conn.resume_reading()
        while not self.complete:
            await self._wait()
        return self._take()

    async def readany(self) -> bytes:
        """The body bytes that arrived since the last call, waiting for some; b"" at the end."""
        while not self._chunks and not self.complete:
            await self._wait()
        return self._take()

    async def drain(self, timeout_s: float) -> None:
        """Read and drop what is left (a stream's closing chunk, typically already on its
        way) so the connection can be reused; give up after ``timeout_s``."""
        if self.complete or self._error is not None:
            return
        self.set_deadline(timeout_s)
        try:
            while not self.complete:
                await self._wait()
                self._take()
        except (TimeoutError, OSError, BadResponse):
            pass  # release() will see it incomplete and close the connection
        self.set_deadline(None)

    def release(self) -> None:
        """Done with the response: the connection goes back to its pool if it can be reused."""
        self.set_deadline(None)
        reusable = self.complete and self.keep_alive and self._error is None
        self._conn.finish(reusable)

    def close(self) -> None:
        """Abandon the response: its connection is closed, never reused."""
        if self._error is None:
            self._error = UpstreamDisconnected("the response was abandoned")
        self.set_deadline(None)
        self._conn.finish(False)
        self._wake()  # a reader still waiting (the stream is cut from outside) sees the error

    # -- called by the connection ------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self._wake()

    def on_head(self, status: int, keep_alive: bool) -> None:
        self.status, self.keep_alive = status, keep_alive
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(wbits=47)  # zlib or gzip framing, detected
        elif coding not in ("identity", ""):
            self.fail(BadResponse(f"unsupported content-encoding '{coding}'"))
            self._conn.close()
            return
        if not self.whole:
            self._wake()

    def on_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self.whole:
            if self._size > MAX_BODY:
                self.fail(BadResponse("the response body is too large"))
                self._conn.close()
            return
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def on_complete(self) -> None:
        if self._error is None:  # a failed response (say, an unreadable coding) never completes
            self.complete = True
        self._wake()

    def on_lost(self, exc: BaseException | None) -> None:
        if exc is None and self.status and not self.complete and self._reads_to_eof():
            self.on_complete()  # a body delimited by the connection's (clean) close
            return
        message = str(exc) if exc else "the upstream closed the connection"
        stale = exc is None and not self.started  # a plain close (FIN), not a reset
        self.fail(UpstreamDisconnected(message, before_response=stale))

    # -- internals ---------------------------------------------------------------------------

    def _reads_to_eof(self) -> bool:
        headers = self.headers
        return "content-length" not in headers and "transfer-encoding" not in headers

    async def _wait(self) -> None:
        """Wait for news; the error, if any, is raised only when nothing is left to read."""
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._conn.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> bytes:
        """The buffered body; an error is raised only once nothing is left to hand out."""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            self._conn.resume_reading()
        if self._decoder is not None:
            data = self._decode(data)
        return data

    def _decode(self, data: bytes) -> bytes:
        """Decompress, refusing a body that inflates past MAX_BODY or ends mid-stream."""
        decoder = self._decoder
        try:
            out = decoder.decompress(data, MAX_BODY + 1)
            if len(out) > MAX_BODY or decoder.unconsumed_tail:
                raise BadResponse("the response body is too large once decompressed")
            if self.complete:
                out += decoder.flush()
                if not decoder.eof:
                    raise BadResponse("the compressed response body is truncated")
                self._decoder = None
        except zlib.error as exc:
            raise BadResponse(f"the response body does not decompress ({exc})") from None
        return out

    def _expire(self) -> None:
        self._timer = None
        self.fail(TimeoutError())
        self._conn.close()


class Connection(asyncio.Protocol):
    """One keep-alive socket to an upstream origin and the response it is reading, if any."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: Callable[[Connection, bool], None]):
        self.loop = loop
        self._done = done  # the pool's: (connection, reusable) once an exchange ends
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._response: Response | None = None
        self.closed = False
        self.idle_since = 0.0
        self._informational = False

    def send(self, head: bytes, body: bytes, whole: bool) -> Response:
        """Write a request; the returned response fills in as bytes arrive."""
        assert self._transport is not None and self._response is None
        response = self._response = Response(self, whole)
        self._transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            self._transport.write(body)  # large bodies (images) are not copied into the head
        return response

    def finish(self, reusable: bool) -> None:
        """End the current exchange; called once by its response (release/close/failure)."""
        if self._response is None:
            return
        self._response = None
        if not reusable:
            self.close()
        self._done(self, reusable and not self.closed)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def socket(self) -> Any:
        """The transport's socket (for options), or None."""
        return self._transport.get_extra_info("socket") if self._transport else None

    def pause_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._response is None:
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response = self._response
            if response is not None:
                response.fail(BadResponse(f"the upstream sent an invalid HTTP response ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None:
            response.on_lost(exc)
            if response.complete:
                return  # the body ended with the close; its reader releases it
            self.finish(False)
        else:
            self._done(self, False)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        response = self._response
        if response is not None and response.status:  # a second response: not ours to read
            raise BadResponse("the upstream sent more than one response")
        if response is not None:
            response.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._response.headers  # type: ignore[union-attr]
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        parser, response = self._parser, self._response
        status = parser.get_status_code()
        if status < 200:  # 1xx (103 Early Hints...): informational, the real head follows
            self._informational = True
            response.headers.clear()  # type: ignore[union-attr]
            return
        response.on_head(status, parser.should_keep_alive())  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self._response.on_body(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._response.on_complete()  # type: ignore[union-attr]
