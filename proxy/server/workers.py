"""``--workers N``: N single-loop processes sharing one port through SO_REUSEPORT.

The parent starts each worker as ``llm-edge-agent serve ... --workers 1 --reuse-port``, so every
worker loads, watches and hot-reloads the config itself; the parent forwards SIGTERM, SIGINT and
SIGHUP, and exits 0 once every worker has drained and exited 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence


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
    children = [subprocess.Popen(command) for _ in range(count)]

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    codes = [child.wait() for child in children]
    return max((abs(code) for code in codes), default=0)
