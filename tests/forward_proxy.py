"""A real forward proxy for tests: Debian's ``tinyproxy`` on a free loopback port, stopped by pid.

Egress through a corporate proxy is tested against a real one (``.ci/run`` installs tinyproxy
when missing), never a stand-in of our own. With ``user``/``password`` it demands Basic
proxy authentication (407 otherwise). Its log (LogLevel Connect) names every request line it
served, so a test can tell a tunnel (``CONNECT host:port``) from an absolute-form request.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from proxy.sim.runner import free_port


class ForwardProxy:
    """One ``tinyproxy -d`` process listening on 127.0.0.1 only."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.port = free_port()
        self.user, self.password = user, password
        self._dir = Path(tempfile.mkdtemp(prefix="lea-tinyproxy-"))
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``http://127.0.0.1:port``: how the gateway's messages name it."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The proxy URL, with credentials when given (default: the ones it demands)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self._dir / "tinyproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def requests(self) -> list[str]:
        """The request lines it received (``CONNECT host:port HTTP/1.1``, ``POST http://...``)."""
        marker = "): "
        return [
            line.split(marker, 1)[1]
            for line in self.log().splitlines()
            if "Request (file descriptor" in line and marker in line
        ]

    def start(self, timeout: float = 10.0) -> ForwardProxy:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not os.path.exists(binary):
            pytest.fail("tinyproxy is not installed (.ci/run installs it: apt-get tinyproxy)")
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 100",
            "LogLevel Connect",
            f'LogFile "{self._dir / "tinyproxy.log"}"',
            "DisableViaHeader Yes",
        ]
        if self.user:
            lines.append(f"BasicAuth {self.user} {self.password}")
        config = self._dir / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        self._popen = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._popen.poll() is not None:
                raise RuntimeError(f"tinyproxy exited with {self._popen.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"tinyproxy did not listen on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL if it lingers), then remove its directory."""
        if self._popen is not None and self._popen.poll() is None:
            os.kill(self._popen.pid, signal.SIGTERM)
            try:
                self._popen.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self._popen.pid, signal.SIGKILL)
                self._popen.wait(5)
        self._popen = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
