"""``--workers N``: N single-loop processes sharing one port through SO_REUSEPORT.

The parent starts each worker as ``llm-edge-agent serve ... --workers 1 --reuse-port``, so every
worker loads, watches and hot-reloads the config itself; the parent forwards SIGTERM, SIGINT and
SIGHUP, and exits 0 once every worker has drained and exited 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

SUPERVISOR_ENV = "LLM_EDGE_SUPERVISOR_PID"
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
    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
    children = [subprocess.Popen(command, env=env) for _ in range(count)]

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    codes = [child.wait() for child in children]
    return max((abs(code) for code in codes), default=0)
