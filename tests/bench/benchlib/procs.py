"""Start, watch and stop the processes under test; read their RSS and CPU time from /proc.

Each target runs in its own session (process group) so it and its workers stop together,
optionally pinned with ``taskset``. Memory is VmRSS summed over the process tree (a
multi-worker server counts every worker; shared pages count once per process, as ``ps``
would show them), CPU is utime+stime of the live tree.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class StartError(RuntimeError):
    """A target did not become ready; the message holds the tail of its log."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    cpus: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return process_tree(self.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c CPUS`` when pinning is wanted and possible."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *cmd]
    return list(cmd)


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def start(
    name: str,
    cmd: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    cpus: str | None = None,
    env: Mapping[str, str] | None = None,
    ready_path: str | None = None,
    timeout_s: float = 30.0,
) -> Proc:
    """Start ``cmd`` and wait until it answers on ``port`` (``ready_path`` -> HTTP 200)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            pinned(cmd, cpus),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    proc = Proc(name, popen, port, log, cpus)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(f"exited with {popen.returncode}: {log_tail(log)}")
        if _ready(port, ready_path):
            return proc
        time.sleep(0.05)
    stop(proc)
    raise StartError(f"not ready on port {port} after {timeout_s:.0f}s: {log_tail(log)}")


def _ready(port: int, path: str | None) -> bool:
    if path is not None:
        return http_status(port, path) == 200
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def stop(proc: Proc, timeout_s: float = 15.0) -> None:
    """SIGTERM the target's process group, then SIGKILL it if it lingers."""
    if not proc.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(5)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def rss_mb(pids: Sequence[int]) -> float:
    """Sum of VmRSS over ``pids`` in MB (1 MB = 1024 KiB)."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
    return total_kb / 1024


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` (live processes), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICK


@dataclass
class RssSampler:
    """Samples the RSS of a process tree in a thread while a load runs; keeps the peak."""

    root: int
    interval_s: float = 0.2
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(rss_mb(process_tree(self.root)))

    @property
    def peak(self) -> float:
        return max(self.samples, default=rss_mb(process_tree(self.root)))
