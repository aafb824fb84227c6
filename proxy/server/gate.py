"""Turning a request away before its handler runs (inbound auth, shutdown), in its dialect.

A refused completion request is still recorded, so 401s and 503s show in the access log and
in ``/metrics`` like any other answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from random import getrandbits

import orjson
from aiohttp import web

from proxy.engine.dialects import ANTHROPIC, OPENAI, RESPONSES
from proxy.engine.state import RequestRecord
from proxy.errors import ErrorType, GatewayError
from proxy.server.keys import STATE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COMPLETIONS = {
    "/v1/chat/completions": OPENAI,
    "/v1/messages": ANTHROPIC,
    "/v1/responses": RESPONSES,
}
DRAINING = GatewayError(
    ErrorType.UNAVAILABLE,
    "This gateway is shutting down and takes no new requests; retry, another one will answer.",
    code="draining",
)


def new_request_id() -> str:
    """A fresh id for a request that came without one: random, not secret, so no syscall
    (uuid4 reads os.urandom on every call)."""
    return f"req_{getrandbits(96):024x}"


def dialect_of(request: web.Request) -> str:
    """Anthropic for /v1/messages and Anthropic-style model listings; OpenAI otherwise."""
    if request.path == "/v1/models":
        return ANTHROPIC if "anthropic-version" in request.headers else OPENAI
    return COMPLETIONS.get(request.path, OPENAI)


def refuse(
    request: web.Request, error: GatewayError, headers: dict[str, str] | None = None
) -> web.Response:
    """``error`` as the client's SDK expects it, with ``x-llm-error`` and ``x-request-id``."""
    dialect = dialect_of(request)
    request_id = request.headers.get("x-request-id") or new_request_id()
    body = orjson.dumps(error.body(dialect))
    out = {**error.headers(), "x-request-id": request_id, **(headers or {})}
    if request.path in COMPLETIONS:
        out["x-llm-attempts"] = "0"  # no upstream call was made
        record = RequestRecord(request_id, dialect, "", False, status=error.status)
        record.error_type, record.bytes_in = str(error.type), request.content_length or 0
        record.bytes_out = len(body)
        request.app[STATE].observe(record)
    return web.Response(
        body=body, status=error.status, headers=out, content_type="application/json"
    )


def draining(request: web.Request) -> web.Response | None:
    """While draining, new completion requests get 503; everything else is still served.

    The listener stays open during the drain so that ``/readyz`` can answer 503 and
    ``/healthz`` 200 (a liveness probe must not kill a sidecar that is finishing streams).
    """
    if request.app[STATE].draining and request.path in COMPLETIONS:
        response = refuse(request, DRAINING)
        response.force_close()
        return response
    return None
