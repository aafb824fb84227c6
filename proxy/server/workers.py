"""``--workers N``: N single-loop processes sharing one port through SO_REUSEPORT.

The parent starts each worker as ``llm-edge-agent serve ... --workers 1 --reuse-port``, so every
worker loads, watches and hot-reloads the config itself; the parent forwards SIGTERM, SIGINT and
SIGHUP, and exits 0 once every worker has drained and exited 0. Each worker's ``/metrics``
answers for all of them (``proxy.server.peers``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

SUPERVISOR_ENV = "LLM_EDGE_SUPERVISOR_PID"
PEERS_ENV = "LLM_EDGE_PEERS_DIR"  # where the workers' metrics sockets are
MAX_PEERS_DIR = 80  # leaves room for "/<pid>.sock" within AF_UNIX's path limit
ORPHAN_CHECK_S = 1.0


def watch_supervisor(stop: asyncio.Event) -> asyncio.Task[None] | None:
    """In a worker: drain and exit if the supervisor dies (a SIGKILL leaves no one to relay
    SIGTERM, and an orphaned worker would keep the port and the vendor keys)."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return None

    async def watch() -> None:
        while os.getppid() == int(supervisor):
            await asyncio.sleep(ORPHAN_CHECK_S)
        stop.set()

    return asyncio.get_running_loop().create_task(watch())


def run_workers(count: int, worker_args: Sequence[str]) -> int:
    """Start ``count`` workers, relay signals to them, wait for all; nonzero if any failed."""
    command = [
        sys.executable,
        "-m",
        "proxy",
        "serve",
        *worker_args,
        "--workers",
        "1",
        "--reuse-port",
    ]
    # Private to this user: each worker's metrics socket, read by the one a scrape reaches.
    peers_dir = tempfile.mkdtemp(prefix="llm-edge-agent-")
    if len(peers_dir) > MAX_PEERS_DIR:  # a long TMPDIR: socket paths are limited to ~107 bytes
        os.rmdir(peers_dir)
        peers_dir = tempfile.mkdtemp(prefix="llm-edge-agent-", dir="/tmp")
    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()), PEERS_ENV: peers_dir}
    try:
        return _supervise([subprocess.Popen(command, env=env) for _ in range(count)])
    finally:
        shutil.rmtree(peers_dir, ignore_errors=True)


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Relay stop and reload signals to ``children``; wait for all of them."""

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    codes = [child.wait() for child in children]
    return max((abs(code) for code in codes), default=0)
