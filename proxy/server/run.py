"""Serving until SIGTERM/SIGINT, then draining in-flight requests (streams included).

On the signal: ``/readyz`` turns 503 and new completion requests get 503 ``unavailable``;
requests and streams already running finish, up to ``server.drain_timeout_s``; then the
listener closes and the process exits 0. A second signal ends the wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from proxy.config.snapshot import Snapshot
from proxy.engine.state import GatewayState
from proxy.errors import ErrorType, GatewayError
from proxy.server.app import create_app
from proxy.server.metrics import METRICS
from proxy.server.peers import Peers
from proxy.server.workers import watch_supervisor

log = logging.getLogger("llm_edge_agent")
CLOSE_TIMEOUT_S = 1.0  # after the drain: how long an ops request may take to finish


def install_uvloop() -> bool:
    """Use uvloop when installed: a faster event loop for the hot path."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(
    snapshot: Snapshot,
    config_path: Path,
    host: str,
    port: int,
    *,
    watch: bool = True,
    reuse_port: bool = False,
    ready: asyncio.Event | None = None,
) -> int:
    """Serve until a stop signal, drain, return the exit code."""
    state = GatewayState(snapshot)
    app = create_app(snapshot, state)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=CLOSE_TIMEOUT_S,  # drain() has already waited for the requests
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    peers = Peers.from_env(app[METRICS])
    if peers is not None and await peers.start():
        app[METRICS].peers = peers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = _start_reloader(state, config_path, watch)
    orphan_watch = watch_supervisor(stop)
    log.info(
        "serving on http://%s:%d (config %s, version %s)", host, port, config_path, snapshot.version
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    if orphan_watch is not None:
        orphan_watch.cancel()
    await _stop_reloader(reloader)  # no reload may swap pools in while they are closed
    stop.clear()  # from here on, a second signal cuts the drain short
    await drain(state, runner, hurry=stop)
    if peers is not None:
        await peers.close()
    return 0


async def drain(
    state: GatewayState, runner: web.AppRunner, hurry: asyncio.Event | None = None
) -> None:
    """Take no new work, let running requests finish (up to the drain timeout), shut down.

    The listener stays open until the end, which is what Kubernetes needs: ``/readyz`` answers
    503 (the kubelet sees "not ready", not a refused connection), ``/healthz`` stays 200 so a
    liveness probe cannot kill a drain in progress, ``/metrics`` shows the drain, and new
    completion requests get a 503 in their dialect (``proxy.server.gate``).
    """
    state.draining = True
    limit = state.snapshot.server.drain_timeout_s
    log.info("draining %d in-flight request(s), up to %.0f s", state.in_flight, limit)
    waits = [asyncio.ensure_future(state.idle.wait())]
    if hurry is not None:
        waits.append(asyncio.ensure_future(hurry.wait()))
    _, pending = await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if state.in_flight:
        log.warning("drain ended with %d request(s) still running: cut", state.in_flight)
        _abort_streams(state)
    await runner.cleanup()


def _abort_streams(state: GatewayState) -> None:
    """End streams still running with an error event in their dialect, never a silent cut."""
    error = GatewayError(
        ErrorType.UNAVAILABLE,
        "The gateway is shutting down; this stream outlived its drain period.",
    )
    for stream in list(state.open_streams):
        stream.abort(error)


def _start_reloader(state: GatewayState, config_path: Path, watch: bool) -> asyncio.Task | None:
    """Hot reload (file watching and SIGHUP), when that module is present."""
    try:
        from proxy.config.watch import start_reloader
    except ImportError:
        return None
    return start_reloader(state, config_path, watch=watch)


async def _stop_reloader(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
