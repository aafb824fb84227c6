"""The completion endpoints: ``/v1/chat/completions`` (OpenAI dialect), ``/v1/messages``
(Anthropic dialect) and ``/v1/responses`` (OpenAI Responses dialect). Thin: read, check, hand
to the engine, write, record."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from proxy.engine import attempts, upstream
from proxy.engine.attempts import Call, CallFailed
from proxy.engine.dialects import (
    ANTHROPIC,
    DIALECTS,
    OPENAI,
    RESPONSES,
    client_response,
    stream_translator,
    wants_usage,
)
from proxy.engine.limits import admit_call
from proxy.engine.relay import StreamRelay
from proxy.engine.route import Target, not_found
from proxy.engine.state import GatewayState, RequestRecord
from proxy.errors import ErrorType, GatewayError, invalid_request, too_large
from proxy.pricing import Usage, cost, format_usd, unknown_usage, usd_number
from proxy.server import cached
from proxy.server.gate import new_request_id
from proxy.server.keys import STATE

TIMEOUT_HEADER = "x-llm-timeout-ms"
CLIENT_CLOSED = 499
_JSON = "application/json"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _handle(request, OPENAI)


async def messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, ANTHROPIC)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _handle(request, RESPONSES)


async def _handle(request: web.Request, dialect: str) -> web.StreamResponse:
    state: GatewayState = request.app[STATE]
    snapshot = state.snapshot  # this request's snapshot, to its end
    started = time.perf_counter()
    request_id = request.headers.get("x-request-id") or new_request_id()
    record = RequestRecord(request_id, dialect, "", False)
    state.in_flight += 1
    call: Call | None = None
    try:
        raw = await _read_body(request, snapshot.server.max_body_bytes)
        record.bytes_in = len(raw)
        if snapshot.server.logging.log_content:
            record.request_body = raw
        body = _parse(raw, dialect)
        record.model_requested, record.stream = str(body["model"]), bool(body.get("stream"))
        deadline, client_deadline = _deadline(request, snapshot, record.model_requested)
        call = Call(
            dialect,
            body,
            raw,
            record.stream,
            snapshot,
            request_id,
            deadline,
            client_deadline=client_deadline,
        )
        hit = await cached.lookup(state, call, request, record, started)
        if hit is not None:
            return hit
        await admit_call(state.limits, call, request.headers)  # 429 before any upstream call
        if call.stream:
            return await _stream(request, state, call, record, started)
        return await _complete(state, call, record, started)
    except CallFailed as failed:
        return _error(dialect, failed.error, record, call, failed.target)
    except GatewayError as error:
        return _error(dialect, error, record, call, None)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client went away (aiohttp cancels the handler): nginx's 499 for the record.
        record.client_disconnected = True
        if not record.status:
            record.status = CLIENT_CLOSED
        raise
    finally:
        if call is not None and call.ticket is not None:
            call.ticket.settle_later(None, None, None)  # failed: release (no-op once settled)
        state.in_flight -= 1
        record.latency_s = time.perf_counter() - started
        if call is not None:
            record.attempts, record.upstream_s = call.attempts, call.upstream_s
            record.outcomes = call.outcomes
            record.dropped_params = call.dropped
        state.observe(record)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes (413) before reading them when declared."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large(limit)
        return await request.read()
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, dialect: str) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc.msg}.") from None
    DIALECTS[dialect].validate(body)
    return body


def _deadline(request: web.Request, snapshot: Any, model_name: str) -> tuple[float, bool]:
    """Now plus the model's total budget, or the client's shorter ``x-llm-timeout-ms`` (then
    the flag is true: hitting that deadline is not the provider's fault)."""
    model = snapshot.resolve(model_name)
    if model is None:
        raise not_found(snapshot, model_name)
    budget_ms = configured_ms = float(model.timeouts.request_ms)
    asked = request.headers.get(TIMEOUT_HEADER)
    if asked:
        try:
            budget_ms = min(budget_ms, max(float(asked), 1.0))
        except ValueError:
            raise invalid_request(
                f"'{TIMEOUT_HEADER}' must be a number of milliseconds.", TIMEOUT_HEADER
            ) from None
    return time.monotonic() + budget_ms / 1000, budget_ms < configured_ms


async def _complete(
    state: GatewayState, call: Call, record: RequestRecord, started: float
) -> web.Response:
    async def once(target: Target, body: bytes, remaining: float) -> upstream.Reply:
        return await upstream.complete(state.pools, target, body, call.request_id, remaining)

    reply, target = await attempts.run(call, state.breakers, once)
    created = int(time.time())
    usage = target.vendor.usage(reply.payload)  # None: the upstream reported none
    amount = None if usage is None else cost(target.model.price, usage)
    payload = client_response(call.dialect, target.vendor, reply.payload, created)
    if payload.get("model") == "":  # a vendor whose responses do not name it (Cohere)
        payload["model"] = target.upstream_model
    if usage is None or not isinstance(payload.get("usage"), dict):
        payload["usage"] = unknown_usage(call.dialect)  # unknown, never a made-up zero
    payload["usage"]["cost"] = None if amount is None else usd_number(amount)
    if call.ticket is not None:  # unknown usage: charged its reservation
        await call.ticket.settle(target.model.name, usage, amount)
    data = orjson.dumps(payload)
    await cached.keep_response(state, call, target, reply.payload, payload, amount)
    _finish_record(record, target, 200, usage, amount, len(data))
    record.usage_missing = usage is None
    if call.snapshot.server.logging.log_content:
        record.response_body = data
    headers = _headers(call, target, record, started)
    if usage is not None and amount is not None:
        headers.update(
            {
                "x-llm-input-tokens": str(usage.prompt_tokens),
                "x-llm-output-tokens": str(usage.completion_tokens),
                "x-llm-cost-usd": format_usd(amount),
            }
        )
    if call.ticket is not None:
        headers.update(call.ticket.headers(target.model.name))
    return web.Response(body=data, status=200, headers=headers, content_type=_JSON)


async def _stream(
    request: web.Request, state: GatewayState, call: Call, record: RequestRecord, started: float
) -> web.StreamResponse:
    include_usage = wants_usage(call.body) if call.dialect == OPENAI else True
    created = int(time.time())

    async def once(target: Target, body: bytes, remaining: float) -> upstream.OpenStream:
        wire = target.vendor.wire
        translator = stream_translator(call.dialect, target.vendor, created, target.upstream_model)
        relay = StreamRelay(
            dialect=call.dialect,
            wire=wire,
            include_usage=include_usage,
            translator=translator,
            price=target.model.price,
            tap=cached.capture(call, target, created),
            model=target.upstream_model,
        )
        first_byte_ms = target.model.timeouts.first_byte_ms
        limit = min(remaining, first_byte_ms / 1000) if first_byte_ms else remaining
        return await upstream.open_stream(state.pools, target, body, call.request_id, limit, relay)

    opened, target = await attempts.run(call, state.breakers, once)
    state.open_streams.add(opened)
    response = web.StreamResponse(status=200, headers=_headers(call, target, record, started))
    if call.ticket is not None:  # remaining before this stream's charge
        response.headers.update(call.ticket.headers(target.model.name))
    try:
        response.content_type = "text/event-stream"
        response.headers["cache-control"] = "no-cache"
        await response.prepare(request)
        if opened.relay.done:  # the whole stream came in its first read
            await cached.keep_stream(state, call, opened.relay)
        await response.write(opened.first)
        record.first_token_s = time.perf_counter() - started
        record.bytes_out = len(opened.first)
        await _relay_rest(response, opened, call, record, state)
        await response.write_eof()
        if opened.relay.done:  # the client has it all; now let the connection end cleanly
            await opened.response.drain(STREAM_DRAIN_S)
        return response
    except ConnectionResetError:  # the client left while we wrote: nothing more to send
        record.client_disconnected = True
        return response
    except asyncio.CancelledError:
        record.client_disconnected = True
        raise
    finally:
        state.open_streams.discard(opened)
        relay = opened.relay
        opened.close()
        if call.ticket is not None:  # settled on what the upstream reported, else the hold
            call.ticket.settle_later(target.model.name, relay.usage, relay.cost)
        _finish_record(record, target, 200, relay.usage, relay.cost, record.bytes_out)
        record.error_type, record.usage_missing = relay.error, relay.usage_missing


STREAM_DRAIN_S = 0.1
"""How long a finished stream's connection may take to deliver its closing bytes (the final
empty chunk, usually right behind the last event) to be reused rather than closed."""


async def _relay_rest(
    response: web.StreamResponse,
    opened: upstream.OpenStream,
    call: Call,
    record: RequestRecord,
    state: GatewayState,
) -> None:
    """Copy the upstream's stream to the client until it ends, fails or the deadline passes."""
    relay, reader = opened.relay, opened.response
    try:
        async with asyncio.timeout(max(call.deadline - time.monotonic(), 0.001)):
            while not relay.done:
                try:
                    chunk = await reader.readany()
                except upstream.UPSTREAM_FAULTS as exc:
                    out = relay.fail(opened.aborted or _broken_stream(exc))
                else:
                    if opened.aborted is not None:
                        out = relay.fail(opened.aborted)
                    else:
                        out = relay.feed(chunk) if chunk else relay.end()
                if out:
                    if relay.done:  # stored before its last byte is sent
                        await cached.keep_stream(state, call, relay)
                    record.bytes_out += len(out)
                    await response.write(out)
    except TimeoutError:
        out = relay.fail(
            GatewayError(
                ErrorType.TIMEOUT,
                "The request's deadline passed while the upstream was still streaming.",
            )
        )
        record.bytes_out += len(out)
        await response.write(out)


def _broken_stream(exc: BaseException) -> GatewayError:
    return GatewayError(
        ErrorType.HTTP_ERROR,
        f"The upstream connection failed before the stream was complete ({type(exc).__name__}).",
    )


def _finish_record(
    record: RequestRecord,
    target: Target,
    status: int,
    usage: Usage | None,
    amount: Decimal | None,
    bytes_out: int,
) -> None:
    record.status, record.usage, record.cost, record.bytes_out = status, usage, amount, bytes_out
    record.model, record.upstream_model = target.model.name, target.upstream_model
    record.provider = target.provider.name


def _headers(call: Call, target: Target, record: RequestRecord, started: float) -> dict[str, str]:
    overhead = time.perf_counter() - started - call.upstream_s - call.waited_s
    record.overhead_s = max(overhead, 0.0)
    return {
        "x-request-id": call.request_id,
        "x-llm-provider": target.provider.name,
        "x-llm-model": target.upstream_model,
        "x-llm-attempts": str(call.attempts),
        "x-llm-overhead-ms": f"{record.overhead_s * 1000:.3f}",
        **cached.headers(call),
        **({"x-llm-capability-fallback": ", ".join(call.skipped)} if call.skipped else {}),
    }


def _error(
    dialect: str,
    error: GatewayError,
    record: RequestRecord,
    call: Call | None,
    target: Target | None,
) -> web.Response:
    record.status, record.error_type = error.status, str(error.type)
    headers = error.headers()
    headers["x-request-id"] = record.request_id
    headers["x-llm-attempts"] = str(call.attempts if call is not None else 0)  # 0: none made
    if call is not None and call.attempts > 1:
        headers["x-should-retry"] = "false"  # we already retried; don't multiply it
    if target is not None and call is not None and call.attempts:
        headers["x-llm-provider"] = target.provider.name
        headers["x-llm-model"] = target.upstream_model
        record.provider, record.model = target.provider.name, target.model.name
    return web.Response(
        body=orjson.dumps(error.body(dialect)),
        status=error.status,
        headers=headers,
        content_type=_JSON,
    )
