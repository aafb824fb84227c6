"""Helpers for the live-config tests: the ways a config file gets replaced, and what to observe.

Each writer mirrors a real deployment: a plain in-place write (``echo > file``), an editor's
save (write a temp file, rename it over the original), and a Kubernetes ConfigMap volume
update (files in a new timestamped directory, published by swapping the ``..data`` symlink).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from proxy.config.watch import start_reloader
from tests.conftest import Gateway, wait_until


def dump(data: dict[str, Any]) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def version_of(raw: bytes) -> str:
    """The config version the gateway reports for a file with these bytes."""
    return hashlib.sha256(raw).hexdigest()[:12]


def write_in_place(path: Path, raw: bytes) -> None:
    """Truncate and rewrite the same inode."""
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(raw)


def write_rename_over(path: Path, raw: bytes) -> None:
    """What editors do: a temp file beside the original, renamed over it (a new inode)."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_bytes(raw)
    os.replace(temp, path)


class ConfigMapDir:
    """A ConfigMap volume's real layout: ``config.yaml -> ..data/config.yaml`` and
    ``..data -> ..<timestamp>/``; an update publishes a new timestamped directory by replacing
    ``..data`` atomically, then deletes the old directory (as the kubelet does)."""

    def __init__(self, root: Path, raw: bytes, name: str = "config.yaml") -> None:
        self.root, self.name, self._n = root, name, 0
        root.mkdir(parents=True, exist_ok=True)
        self._current = self._new_version(raw)
        (root / "..data").symlink_to(self._current.name)
        (root / name).symlink_to(f"..data/{name}")

    @property
    def path(self) -> Path:
        return self.root / self.name

    def _new_version(self, raw: bytes) -> Path:
        self._n += 1
        directory = self.root / f"..2026_11_25_10_00_{self._n:02d}.{os.getpid()}"
        directory.mkdir()
        (directory / self.name).write_bytes(raw)
        return directory

    def publish(self, raw: bytes) -> None:
        old, self._current = self._current, self._new_version(raw)
        temp = self.root / "..data_tmp"
        temp.symlink_to(self._current.name)
        os.replace(temp, self.root / "..data")
        (old / self.name).unlink()
        old.rmdir()


WRITERS: dict[str, Callable[[Path, bytes], None]] = {
    "in_place": write_in_place,
    "rename_over": write_rename_over,
}


def start_live(gateway: Gateway, path: Path | None = None) -> asyncio.Task[None]:
    """Start the reloader (what ``serve()`` does) on the in-process gateway's loop."""

    async def start() -> asyncio.Task[None]:
        return start_reloader(gateway.state, path or gateway.config_path, watch=True)

    return gateway.server.call(start)


def stop_live(gateway: Gateway, task: asyncio.Task[None]) -> None:
    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    gateway.server.call(stop)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp_connections(port: int) -> list[tuple[int, int, str]]:
    """Open IPv4 TCP connections (not listening, not TIME_WAIT) with ``port`` at either end,
    as (local port, remote port, state); from /proc/net/tcp, so every process is seen."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = int(fields[1][-4:], 16), int(fields[2][-4:], 16), fields[3]
        if port in (local, remote) and state not in ("0A", "06"):  # LISTEN, TIME_WAIT
            rows.append((local, remote, state))
    return rows


def upstream_ports(sim_port: int) -> set[int]:
    """Local ports of the gateway's established connections to the simulator."""
    return {local for local, remote, state in tcp_connections(sim_port) if remote == sim_port}


def wait_for_version(gateway: Gateway, raw: bytes, timeout: float = 5.0) -> float:
    """Seconds until the gateway serves the config with these bytes."""
    started, version = time.monotonic(), version_of(raw)
    wait_until(lambda: gateway.state.snapshot.version == version, timeout=timeout)
    return time.monotonic() - started
