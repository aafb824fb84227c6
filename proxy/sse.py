"""Server-sent events: an incremental parser for upstream streams and encoders for clients.

The parser follows the SSE spec's framing: LF, CRLF or CR line ends, ``:`` comment lines
ignored, multi-line ``data`` joined with ``\\n``, an event dispatched at a blank line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched SSE event; ``name`` is the ``event:`` field (None when absent)."""

    name: str | None
    data: bytes


class SSEParser:
    """Feed bytes as they arrive; get whole events back. Holds only the unfinished tail."""

    __slots__ = ("_buf", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two chunks
        self._pending_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        *blocks, self._buf = buf.split(b"\n\n")
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Event]:
        """Dispatch a final event that was not followed by a blank line (lenient upstreams)."""
        tail, self._buf = self._buf, b""
        event = _parse_block(tail) if tail.strip() else None
        return [event] if event is not None else []

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a cut stream)."""
        return bool(self._buf.strip())


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return Event(None, block[6:])  # fast path: the common single-line OpenAI event
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode()
    if not data and name is None:
        return None
    return Event(name, b"\n".join(data))


def iter_events(raw: bytes) -> Iterator[Event]:
    """Parse a whole recorded stream (tests, samples)."""
    parser = SSEParser()
    yield from parser.feed(raw)
    yield from parser.close()


def encode_data(payload: dict | bytes) -> bytes:
    """An OpenAI-style ``data:`` event."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"data: " + body + b"\n\n"


def encode_named(name: str, payload: dict | bytes) -> bytes:
    """An Anthropic-style named event (``event:`` equals ``data.type``)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"event: " + name.encode() + b"\ndata: " + body + b"\n\n"


def encode_typed(name: str | None, payload: dict | bytes) -> bytes:
    """A named event whose name, when not given, is its payload's ``type``."""
    if name is None and isinstance(payload, dict):
        name = str(payload.get("type"))
    return encode_named(name or "", payload)


DONE = b"data: [DONE]\n\n"
