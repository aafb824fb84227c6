"""Run any aiohttp application on loopback in a background thread (tests, demos, benchmarks).

The app gets its own event loop (uvloop when installed) in a daemon thread, so synchronous
test code and blocking SDK clients can talk to it. Startup errors are re-raised in the
caller; :meth:`BackgroundServer.stop` runs the app's on_shutdown/on_cleanup hooks, lets
in-flight requests finish (up to ``shutdown_timeout``) and joins the thread.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

AppFactory = Callable[[], "web.Application | Awaitable[web.Application]"]
T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (prefer port=0 binding where you can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when available (as in production), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundServer:
    """``with BackgroundServer(lambda: create_app(sim)) as server: ... server.url ...``"""

    def __init__(
        self,
        app_factory: AppFactory,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = 10.0,
        start_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._factory = app_factory
        self._ssl = ssl_context  # serve HTTPS with it (a test's private CA, say)
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    @property
    def app(self) -> web.Application:
        assert self._runner is not None, "server not started"
        return self._runner.app

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "server not started"
        return self._loop

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._run, name=f"bg-server:{self.host}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError(f"server did not start within {self._start_timeout}s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Graceful stop: no new connections, hooks run, in-flight requests drain."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self._shutdown_timeout + 5)
        if thread.is_alive():
            raise TimeoutError("server thread did not stop")
        self._thread = None

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the server thread ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._error = exc
            self._close_loop(loop)
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
        finally:
            self._close_loop(loop)

    async def _startup(self) -> None:
        made = self._factory()
        app = await made if inspect.isawaitable(made) else made
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
