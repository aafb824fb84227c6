"""Programmable upstream failures, the vendors' error bodies, and the writer that breaks replies.

A test pushes :class:`Fault` values; each incoming completion request takes the first one
that applies to its path (an empty queue answers normally). The vendor modules only build a
:class:`Reply`; :func:`deliver` puts it on the wire, honouring the fault (cut the stream, stall
the body, truncate the JSON, ...), so every failure mode works the same for both vendors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

KINDS = frozenset(
    {
        "ok",  # answer normally (optionally with its own n_chunks / chunk_delay_ms)
        "reset",  # close the TCP connection (RST) without a response
        "status",  # answer `status` with the vendor's error body and headers
        "slow_headers",  # wait delay_ms, then answer normally
        "slow_body",  # send the status line and headers, wait delay_ms, then the body
        "stream_cut",  # after `after_events` events (or half a JSON body), close abruptly
        "stream_error",  # after `after_events` events, the vendor's in-stream error event
        "invalid_json",  # 200 with the JSON body cut in half
        "wrong_content_type",  # a text/html page (status 200 unless given)
        "hang",  # never answer; returns once the client goes away
        "no_usage",  # answer normally, but report no usage (a lenient OpenAI-compatible server)
    }
)
COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses", "/v2/chat"})
HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)
SSE_TYPE = "text/event-stream; charset=utf-8"
CUT_GRACE_MS = 50.0
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Fault:
    """One programmed misbehaviour. Without ``path`` it applies to the next completion
    request (``/v1/chat/completions``, ``/v1/messages``, ``/v1/responses``); with it, only
    to that path."""

    kind: str = "ok"
    path: str | None = None
    status: int | None = None
    sample: str | None = None
    """Error sample file stem to use instead of the status's, e.g. ``429-insufficient_quota``."""
    headers: Mapping[str, str | None] = field(default_factory=dict)
    """Overrides of the error sample's headers (``retry-after``...); None removes one."""
    body: Any = None
    """Replaces the error body of a ``status`` fault."""
    delay_ms: float | None = None
    """slow_headers/slow_body: the stall. stream_cut: the pause between the last event and
    the cut (default CUT_GRACE_MS), so the client reads the events before the connection
    drops; aiohttp clients discard unread bytes once a connection is lost."""
    after_events: int = 2
    chunk_delay_ms: float | None = None
    n_chunks: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return cls(**data)

    @property
    def stall_s(self) -> float:
        return (self.delay_ms or 0) / 1000

    @property
    def cut_grace_s(self) -> float:
        return (CUT_GRACE_MS if self.delay_ms is None else self.delay_ms) / 1000

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


class FaultQueue:
    """Thread-safe FIFO: tests push from their thread, the server takes from its loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def take(self, path: str) -> Fault | None:
        """Remove and return the first fault that applies to a request for ``path``."""
        if not self._queue:
            return None
        with self._lock:
            for fault in self._queue:
                if fault.path == path or (fault.path is None and is_completion(path)):
                    self._queue.remove(fault)
                    return fault
        return None


def is_completion(path: str) -> bool:
    """A completion endpoint of any fake vendor (Azure's carry the deployment in the path)."""
    return path in COMPLETION_PATHS or path.endswith("/chat/completions")


@dataclass(frozen=True, slots=True)
class Reply:
    """What a fake vendor wants to send: a whole body, or SSE events (``events`` not None)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    events: Sequence[bytes] | None = None
    error_event: bytes = b""
    """The vendor's in-stream error, sent by a ``stream_error`` fault."""


def without_usage(reply: Reply) -> Reply:
    """``reply`` as a server that reports no usage sends it: no ``usage`` in a body, no
    OpenAI usage chunk in a stream, no ``usage`` in Anthropic's ``message_delta``."""
    if reply.events is None:
        body = orjson.loads(reply.body)
        body.pop("usage", None)
        body.pop("usageMetadata", None)  # Gemini's
        return replace(reply, body=orjson.dumps(body))
    events = []
    for event in reply.events:
        name, _, data = event.rpartition(b"data: ")
        if not data.startswith(b"{"):
            events.append(event)  # [DONE]
            continue
        payload = orjson.loads(data)
        payload.pop("usageMetadata", None)  # Gemini's, on every event
        if payload.get("type") == "message_delta":
            payload.pop("usage", None)
        elif "choices" in payload and not payload["choices"] and payload.get("usage"):
            continue  # OpenAI's usage chunk
        events.append(name + b"data: " + orjson.dumps(payload) + b"\n\n")
    return replace(reply, events=events)


# --- the vendor kit's error samples -----------------------------------------------------------


def kit_dir() -> Path:
    """The vendor kit shipped inside the package (``proxy/sim/vendor``), or $SIM_VENDOR_KIT."""
    env = os.environ.get("SIM_VENDOR_KIT")
    return Path(env) if env else Path(__file__).resolve().parent / "vendor"


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@lru_cache(maxsize=64)
def _sample(vendor: str, name: str) -> tuple[int, tuple[tuple[str, str], ...], bytes] | None:
    path = kit_dir() / "samples" / vendor / "errors" / f"{name}.json"
    if not path.is_file():
        return None
    data = orjson.loads(path.read_bytes())
    return data["status"], tuple(data["headers"].items()), orjson.dumps(data["body"])


def _fallback_body(vendor: str, status: int) -> Any:
    """A correctly shaped error for statuses the kit has no sample of."""
    message = f"Simulated upstream error (HTTP {status})."
    if vendor == "cohere":  # Cohere's bodies are {id, message}, whatever the status
        return {"id": "sim-error", "message": message}
    if vendor in ("gemini", "vertex"):
        from proxy.sim.gemini import STATUS

        return {"error": {"code": status, "message": message,
                          "status": STATUS.get(status, "UNKNOWN")}}  # fmt: skip
    if vendor == "anthropic":
        kind = _ANTHROPIC_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_sim",
        }
    if vendor == "azure":  # {code, message}; the code is the status as a string
        return {"error": {"code": str(status), "message": message}}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def error_parts(vendor: str, status: int, sample: str | None = None) -> tuple[dict[str, str], Any]:
    """Headers and body of the vendor's error for ``status`` (from the kit when it has one)."""
    found = _sample(vendor, sample or str(status))
    if found is None:
        return {"content-type": JSON_TYPE}, _fallback_body(vendor, status)
    _, headers, body = found
    return dict(headers), orjson.loads(body)


def error_reply(
    vendor: str,
    status: int,
    *,
    sample: str | None = None,
    body: Any = None,
    headers: Mapping[str, str | None] | None = None,
) -> Reply:
    """The vendor's error response; ``body``/``headers`` replace or override the sample's."""
    base_headers, base_body = error_parts(vendor, status, sample)
    for name, value in (headers or {}).items():
        if value is None:
            base_headers.pop(name.lower(), None)
        else:
            base_headers[name.lower()] = str(value)
    payload = base_body if body is None else body
    return Reply(status, base_headers, orjson.dumps(payload))


# --- putting a reply on the wire, broken on purpose -------------------------------------------


async def pause(seconds: float, closing: asyncio.Event) -> None:
    """Sleep, but wake at server shutdown so a slow fault never holds the server up."""
    if seconds > 0 and not closing.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), seconds)


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), like a crashed upstream."""
    abort_with_rst(request.transport)


def abort_with_rst(transport: asyncio.BaseTransport | None) -> None:
    """Close ``transport`` with a TCP RST rather than a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def hang(request: web.Request, closing: asyncio.Event) -> bool:
    """Answer nothing until the client leaves (True) or the server shuts down (False)."""
    while not client_gone(request):
        if closing.is_set():
            reset(request)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), 0.01)
    return True


async def deliver(
    request: web.Request,
    reply: Reply,
    fault: Fault | None,
    delay_s: float,
    closing: asyncio.Event,
) -> tuple[web.StreamResponse, bool]:
    """Send ``reply`` as ``fault`` says; returns the response and whether the client left."""
    kind = fault.kind if fault is not None else "ok"
    if reply.events is not None:
        return await _deliver_stream(request, reply, fault, delay_s, closing)
    if kind == "invalid_json":
        body = reply.body[: len(reply.body) // 2]
        return web.Response(status=reply.status, headers=reply.headers, body=body), False
    if kind not in ("stream_cut", "slow_body"):
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body), False
    assert fault is not None
    resp = web.StreamResponse(status=reply.status, headers=reply.headers)
    resp.content_length = len(reply.body)
    try:
        await resp.prepare(request)
        if kind == "slow_body":
            await pause(fault.stall_s, closing)
            await resp.write(reply.body)
            return resp, False
        await resp.write(reply.body[: len(reply.body) // 2])
        await pause(fault.cut_grace_s, closing)
    except ConnectionError:
        return resp, True
    _cut(request)
    return resp, False


async def _deliver_stream(
    request: web.Request,
    reply: Reply,
    fault: Fault | None,
    delay_s: float,
    closing: asyncio.Event,
) -> tuple[web.StreamResponse, bool]:
    kind = fault.kind if fault is not None else "ok"
    stop_at = fault.after_events if fault is not None and kind.startswith("stream_") else None
    resp = web.StreamResponse(status=reply.status, headers=reply.headers)
    events = reply.events or ()
    try:
        await resp.prepare(request)
        if kind == "slow_body" and fault is not None:
            await pause(fault.stall_s, closing)
        await _write_events(resp, events, stop_at, delay_s, closing)
        if kind == "stream_cut" and fault is not None:
            await pause(fault.cut_grace_s, closing)
            _cut(request)
            return resp, False
        if kind == "stream_error":
            await resp.write(reply.error_event)
        await resp.write_eof()
    except ConnectionError:
        return resp, True
    return resp, False


async def _write_events(
    resp: web.StreamResponse,
    events: Iterable[bytes],
    stop_at: int | None,
    delay_s: float,
    closing: asyncio.Event,
) -> None:
    for i, event in enumerate(events):
        if i == stop_at:
            return
        if i and delay_s:
            await pause(delay_s, closing)
        await resp.write(event)


def _cut(request: web.Request) -> None:
    """Close after flushing what was written: the body just stops (no terminal chunk)."""
    transport = request.transport
    if transport is not None:
        transport.close()
