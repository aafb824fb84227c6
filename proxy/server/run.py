"""Serving until SIGTERM/SIGINT, then draining in-flight requests (streams included).

On the signal: ``/readyz`` turns 503, the listening socket closes (no new connections),
requests already running finish, up to ``server.drain_timeout_s``; then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from proxy.config.snapshot import Snapshot
from proxy.engine.state import GatewayState
from proxy.server.app import create_app

log = logging.getLogger("llm_edge_agent")


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
        shutdown_timeout=snapshot.server.drain_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = _start_reloader(state, config_path, watch)
    log.info(
        "serving on http://%s:%d (config %s, version %s)", host, port, config_path, snapshot.version
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    await drain(state, runner, site)
    if reloader is not None:
        reloader.cancel()
    return 0


async def drain(state: GatewayState, runner: web.AppRunner, site: web.TCPSite) -> None:
    """Stop accepting, let in-flight requests finish within the drain timeout, shut down."""
    state.draining = True
    limit = state.snapshot.server.drain_timeout_s
    log.info("draining %d in-flight request(s), up to %.0f s", state.in_flight, limit)
    await site.stop()
    deadline = time.monotonic() + limit
    while state.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if state.in_flight:
        log.warning("drain timeout: %d request(s) still running are cancelled", state.in_flight)
    await runner.cleanup()


def _start_reloader(state: GatewayState, config_path: Path, watch: bool) -> asyncio.Task | None:
    """Hot reload (file watching and SIGHUP), when that module is present."""
    try:
        from proxy.config.watch import start_reloader
    except ImportError:
        return None
    return start_reloader(state, config_path, watch=watch)
