"""The aiohttp application: routes, and the lifecycle of the gateway's pooled sessions."""

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
from proxy.server.auth import auth_middleware
from proxy.server.gate import drain_middleware
from proxy.server.keys import STATE
from proxy.server.metrics import METRICS, Metrics, metrics_endpoint


def create_app(snapshot: Snapshot, state: GatewayState | None = None) -> web.Application:
    """An app serving ``snapshot``; sessions are created at startup and closed at cleanup."""
    # client_max_size=0: the body limit is the snapshot's, enforced per request (it can reload).
    app = web.Application(
        client_max_size=0,
        handler_args={"max_field_size": 16384},
        middlewares=[auth_middleware, drain_middleware],
    )
    state = app[STATE] = state or GatewayState(snapshot)
    metrics = app[METRICS] = Metrics(state)
    access_log = AccessLog(lambda: state.snapshot.server.logging)
    state.observers.append(_after_response(metrics.observe, access_log))
    app.router.add_post("/v1/chat/completions", completions.chat_completions)
    app.router.add_post("/v1/messages", completions.messages)
    app.router.add_get("/v1/models", ops.models)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/status", ops.status)
    app.router.add_get("/health/providers", ops.providers_health)
    app.router.add_get("/metrics", metrics_endpoint)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _after_response(*observers: Observer) -> Observer:
    """``observers``, run on the loop's next turn, once the response is on its way: counting
    and logging (~25 us) never add to a response's latency, and cannot turn it into an error."""

    def run(record: RequestRecord) -> None:
        for observer in observers:
            observer(record)

    def schedule(record: RequestRecord) -> None:
        asyncio.get_running_loop().call_soon(run, record)

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
