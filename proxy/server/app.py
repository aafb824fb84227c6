"""The aiohttp application: routes, and the lifecycle of the gateway's upstream pools."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.config.snapshot import Snapshot
from proxy.engine import health
from proxy.engine.state import GatewayState, Observer, RequestRecord
from proxy.logs import AccessLog
from proxy.server import completions, ops
from proxy.server.auth import unauthorized
from proxy.server.gate import Handler, draining
from proxy.server.keys import STATE
from proxy.server.metrics import METRICS, Metrics, metrics_endpoint


def create_app(snapshot: Snapshot, state: GatewayState | None = None) -> web.Application:
    """An app serving ``snapshot``; pools are created at startup and closed at cleanup."""
    # client_max_size=0: the body limit is the snapshot's, enforced per request (it can reload).
    app = web.Application(
        client_max_size=0,
        handler_args={"max_field_size": 16384},
        middlewares=[admission],
    )
    state = app[STATE] = state or GatewayState(snapshot)
    metrics = app[METRICS] = Metrics(state)
    access_log = AccessLog(lambda: state.snapshot.server.logging)
    state.observers.append(_after_response(metrics.observe, access_log))
    app.router.add_post("/v1/chat/completions", completions.chat_completions)
    app.router.add_post("/v1/messages", completions.messages)
    app.router.add_post("/v1/responses", completions.responses)
    app.router.add_get("/v1/models", ops.models)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/status", ops.status)
    app.router.add_get("/health/providers", ops.providers_health)
    app.router.add_get("/metrics", metrics_endpoint)
    app.cleanup_ctx.append(_lifecycle)
    return app


@web.middleware
async def admission(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inbound auth, then the drain gate: one middleware, since aiohttp wraps each one anew
    for every request."""
    refused = unauthorized(request) or draining(request)
    if refused is not None:
        return refused
    return await handler(request)


def _after_response(*observers: Observer) -> Observer:
    """``observers``, run on the loop's next turn, once the response is on its way: counting
    and logging never add to a response's latency, and cannot turn it into an error. Records
    are batched: one callback per loop turn, however many requests finished in it."""
    pending: list[RequestRecord] = []

    def run() -> None:
        batch = pending[:]
        pending.clear()
        for record in batch:
            for observer in observers:
                observer(record)

    def schedule(record: RequestRecord) -> None:
        pending.append(record)
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(run)

    return schedule


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.start()
    checker = asyncio.get_running_loop().create_task(health.run_periodic(state))
    yield
    checker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await checker
    await state.close()
