"""Shared fixtures: a simulated vendor, and the real gateway in-process or as a subprocess.

The gateway runs the shipped ``config.yaml`` with its providers pointed at the simulator, so
end-to-end tests exercise the real prices and aliases a user gets.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.build import load_snapshot
from proxy.demo import demo_config, shipped_models
from proxy.engine.state import GatewayState
from proxy.server.app import create_app
from proxy.server.keys import STATE
from proxy.sim.app import Sim
from proxy.sim.app import create_app as create_sim_app
from proxy.sim.runner import BackgroundServer, free_port
from tests.sdk import anthropic_client, openai_client

OPENAI_KEY = "sk-test-openai-upstream-key"
ANTHROPIC_KEY = "sk-ant-test-upstream-key"
COHERE_KEY = "co-test-upstream-key"
CLIENT_KEY = "sk-client-own-key-never-upstream"
ENVIRON = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
ENVIRON["COHERE_API_KEY"] = COHERE_KEY
GEMINI_KEY = "test-gemini-upstream-key"
ENVIRON["GEMINI_API_KEY"] = GEMINI_KEY
REPO = Path(__file__).resolve().parents[1]
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v2/chat")

# Fast retries for the general suite; resilience tests set their own policy.
TEST_DEFAULTS: dict[str, Any] = {
    "retry": {"max_retries": 2, "initial_backoff_ms": 5, "max_backoff_ms": 20},
    "models": {"gpt-4": {"aliases": ["gpt4"]}},
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; a None value deletes the key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def wait_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class SimHandle:
    sim: Sim
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url

    def completions(self) -> list[Any]:
        return [r for r in self.sim.received if r.path in COMPLETION_PATHS]


@dataclass
class Gateway:
    url: str
    server: BackgroundServer
    config_path: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> GatewayState:
        return self.server.app[STATE]

    def openai(self, **kwargs: Any) -> Any:
        return openai_client(f"{self.url}/v1", CLIENT_KEY, **kwargs)

    def anthropic(self, **kwargs: Any) -> Any:
        return anthropic_client(self.url, api_key=CLIENT_KEY, **kwargs)


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    simulator = Sim(
        openai_key=OPENAI_KEY,
        anthropic_key=ANTHROPIC_KEY,
        cohere_key=COHERE_KEY,
        gemini_key=GEMINI_KEY,
        validate=True,
        extra_models=shipped_models(),
    )
    with BackgroundServer(lambda: create_sim_app(simulator)) as server:
        yield SimHandle(simulator, server)
    invalid = [r for r in simulator.received if r.schema_errors]
    assert not invalid, f"the fake vendor received invalid requests: {invalid[:2]}"


def gateway_config(sim_url: str, tmp: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Shipped config -> simulator, with the test defaults and ``overrides`` merged in."""
    base = yaml.safe_load(demo_config(sim_url, tmp).read_text())
    data = deep_merge(deep_merge(base, TEST_DEFAULTS), overrides or {})
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def gateway_factory(sim: SimHandle, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[BackgroundServer] = []

    def make(
        overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
    ) -> Gateway:
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        path = gateway_config(sim.url, directory, overrides)
        snapshot = load_snapshot(path, environ={**ENVIRON, **(environ or {})})
        server = BackgroundServer(lambda: create_app(snapshot), shutdown_timeout=5).start()
        started.append(server)
        return Gateway(server.url, server, path, yaml.safe_load(path.read_text()))

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    return gateway_factory()


@dataclass
class Process:
    """The real CLI (``python -m proxy serve``) in a subprocess."""

    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path
    tmp_dir: Path  # its TMPDIR, unless the test gave another

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=0.5) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def spawn_gateway(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    processes: list[Process] = []
    # The gateway's TMPDIR (--workers sockets): short, and removed even after a SIGKILL.
    run_dir = tempfile.mkdtemp(prefix="lea-")

    def spawn(config_path: Path, *extra: str, environ: dict[str, str] | None = None) -> Process:
        port = free_port()
        log_path = tmp_path / f"gateway-{port}.log"
        env = {**os.environ, **ENVIRON, "TMPDIR": run_dir, **(environ or {})}
        command = [
            sys.executable,
            "-m",
            "proxy",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(port),
            *extra,
        ]
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
                start_new_session=True,  # its own process group: --workers children included
            )
        process = Process(popen, f"http://127.0.0.1:{port}", log_path, Path(run_dir))
        processes.append(process)
        wait_until(lambda: _healthy(process.url) or popen.poll() is not None, timeout=15)
        assert popen.poll() is None, f"gateway exited at start:\n{process.log()}"
        return process

    yield spawn
    for process in processes:  # the whole process group, workers included, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(5)
    shutil.rmtree(run_dir, ignore_errors=True)
