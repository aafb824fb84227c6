"""The response cache on the request path: look up before any upstream call, replay a hit in
the client's dialect, store a complete answer before its last byte goes out.

The completion handlers call these; each returns at once when the cache does not apply to the
request's model, so a gateway without ``cache:`` pays one dictionary lookup per request.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from proxy.engine.attempts import Call
from proxy.engine.cache import replay
from proxy.engine.cache.capture import StreamCapture
from proxy.engine.cache.entry import Answer
from proxy.engine.cache.store import Lookup
from proxy.engine.dialects import OPENAI, wants_usage
from proxy.engine.relay import StreamRelay
from proxy.engine.route import Target
from proxy.engine.state import GatewayState, RequestRecord
from proxy.pricing import Usage
from proxy.server.auth import presented

CACHE_HEADER = "x-llm-cache"
SAVED_HEADER = "x-llm-cost-saved-usd"
ZERO = Decimal(0)


async def lookup(
    state: GatewayState, call: Call, request: web.Request, record: RequestRecord, started: float
) -> web.StreamResponse | None:
    """Attach the request's lookup to ``call``; on a hit, answer it here (no upstream call)."""
    if not call.snapshot.cache.models:
        return None  # the cache is off: nothing to look at
    found = await state.cache.lookup(call, request.headers, presented)
    if found is None:
        return None
    call.cache, record.cache = found, found.status
    if found.answer is None:
        return None
    return await _replay(request, call, found.answer, record, started)


def headers(call: Call) -> dict[str, str]:
    """``x-llm-cache`` for a miss or a bypass (absent when the cache does not apply)."""
    return {CACHE_HEADER: call.cache.status} if call.cache is not None else {}


async def keep_response(
    state: GatewayState,
    call: Call,
    target: Target,
    upstream: dict[str, Any],
    sent: dict[str, Any],
    amount: Decimal | None,
) -> None:
    """Store a whole answer: ``upstream`` in the vendor's wire format, ``sent`` the client's."""
    found: Lookup | None = call.cache
    if found is None or not found.store:
        return
    if call.dialect == OPENAI:
        unified = sent  # the client's format is the unified one (not changed once sent)
    else:
        unified = target.vendor.response_to_unified(upstream, int(time.time()))
    if state.cache.stores_later:
        # The memory backend: encoding and keeping the answer runs on the loop's next turn,
        # off the response's latency. It still comes before any later request's lookup: the
        # callback is queued before the response is written, so before the loop can read a
        # request sent after it.
        asyncio.get_running_loop().call_soon(state.cache.store_now, found, target, unified, amount)
        return
    await state.cache.store(found, target, unified, amount)


def capture(call: Call, target: Target, created: int) -> StreamCapture | None:
    """A tap for the stream relay of one attempt, when its answer may be stored."""
    found: Lookup | None = call.cache
    if found is None or not found.store:
        return None
    return StreamCapture(target, created)


async def keep_stream(state: GatewayState, call: Call, relay: StreamRelay) -> None:
    """Once a stream ended cleanly, store it; called before its last bytes are written."""
    found: Lookup | None = call.cache
    tap = relay.tap
    if found is None or found.stored or not relay.done or not isinstance(tap, StreamCapture):
        return
    completion = tap.completion(ended=True) if relay.error is None else None
    if completion is not None:
        await state.cache.store(found, tap.target, completion, relay.cost)
    found.stored = True  # stored or not, this stream is settled


async def _replay(
    request: web.Request, call: Call, answer: Answer, record: RequestRecord, started: float
) -> web.StreamResponse:
    usage = Usage.read_openai(answer.usage_or_none)  # None: the upstream reported none
    record.status, record.usage, record.cost, record.cost_saved = 200, usage, ZERO, answer.cost
    record.usage_missing = usage is None
    record.model, record.upstream_model = answer.model, answer.upstream_model
    record.provider = answer.provider
    out = {
        "x-request-id": call.request_id,
        "x-llm-provider": answer.provider,
        "x-llm-model": answer.upstream_model,
        "x-llm-attempts": "0",
        CACHE_HEADER: "hit",
        "x-llm-cost-usd": "0",
    }
    record.overhead_s = time.perf_counter() - started  # all of it is the gateway's own time
    out["x-llm-overhead-ms"] = f"{record.overhead_s * 1000:.3f}"
    if answer.saved_usd is not None:
        out[SAVED_HEADER] = answer.saved_usd
    if not call.stream:
        if call.dialect == OPENAI:  # stored ready to send: no parse, no serialise
            data = answer.body
        else:
            data = orjson.dumps(replay.response(call.dialect, answer.completion))
        if usage is not None:
            out["x-llm-input-tokens"] = str(usage.prompt_tokens)
            out["x-llm-output-tokens"] = str(usage.completion_tokens)
        record.bytes_out = len(data)
        return web.Response(body=data, headers=out, content_type="application/json")
    include_usage = wants_usage(call.body) if call.dialect == OPENAI else True
    data = replay.stream(call.dialect, answer.completion, include_usage, answer.upstream_model)
    response = web.StreamResponse(status=200, headers=out)
    response.content_type = "text/event-stream"
    response.headers["cache-control"] = "no-cache"
    await response.prepare(request)
    await response.write(data)
    record.first_token_s = time.perf_counter() - started
    await response.write_eof()
    record.bytes_out = len(data)
    return response
