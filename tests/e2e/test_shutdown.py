"""Graceful shutdown of the real CLI: SIGTERM during a long stream.

What the manifests in deploy/ rely on: ``/readyz`` turns 503 at once, ``/healthz`` stays 200
(a liveness probe must not kill the drain), new completion requests get 503 while the running
stream completes intact, and the process exits 0 as soon as it is done, within the grace
period; a stream longer than the drain timeout ends at the timeout with an error event in its
dialect (never a silent cut), still exit 0.
"""

from __future__ import annotations

import http.client
import signal
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from proxy.server.run import CLOSE_TIMEOUT_S
from tests.conftest import gateway_config, wait_until
from tests.http import get, post

GRACE_S = 10.0
BODY = orjson.dumps(
    {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "tell a long story"}],
    }
)


@dataclass
class StreamReader:
    """One streamed completion read line by line in a thread, with the time it ended."""

    url: str
    lines: list[bytes] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    ended_at: float = 0.0

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request(
            "POST", "/v1/chat/completions", BODY, {"content-type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200
        try:
            while line := response.readline():
                self.lines.append(line)
                if line.startswith(b"data: "):
                    self.started.set()
        except (http.client.IncompleteRead, ConnectionError):
            pass  # cut by the drain timeout: what the lines hold is what arrived
        finally:
            self.ended_at = time.monotonic()
            connection.close()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"

    @property
    def events(self) -> list[bytes]:
        return [line.strip() for line in self.lines if line.startswith(b"data: ")]


def start(spawn_gateway, sim, tmp_path, drain_s: float, n_chunks: int):
    sim.sim.configure(chunk_delay_ms=100, n_chunks=n_chunks)
    config = gateway_config(sim.url, tmp_path, {"server": {"drain_timeout_s": drain_s}})
    process = spawn_gateway(config)
    reader = StreamReader(process.url)
    assert reader.started.wait(10), "the stream never started"
    return process, reader


def test_sigterm_during_a_stream_drains_it_then_exits_0(spawn_gateway, sim, tmp_path):
    process, reader = start(spawn_gateway, sim, tmp_path, GRACE_S, n_chunks=20)  # ~2 s
    parts = urlsplit(process.url)
    probe = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    signalled = time.monotonic()
    process.signal(signal.SIGTERM)

    def readyz() -> int:
        probe.request("GET", "/readyz")
        response = probe.getresponse()
        response.read()
        return response.status

    wait_until(lambda: readyz() == 503, timeout=1)
    assert time.monotonic() - signalled < 1, "/readyz must turn 503 at once"
    assert reader.thread.is_alive(), "the stream is still running during these checks"
    assert get(f"{process.url}/healthz").status_code == 200
    refused = post(f"{process.url}/v1/chat/completions", BODY)
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "unavailable"
    assert refused.headers["x-llm-error"] == "unavailable"
    assert refused.headers["connection"] == "close"
    metrics = get(f"{process.url}/metrics").text
    assert "llm_edge_draining 1.0" in metrics and "llm_edge_open_streams 1.0" in metrics

    reader.join(GRACE_S)
    events = reader.events
    assert events[-1] == b"data: [DONE]", events[-3:]
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c], "the stream must complete, not fail"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert process.wait(timeout=GRACE_S) == 0
    exited = time.monotonic()
    assert exited - signalled < GRACE_S
    assert exited - reader.ended_at < 3, "exit follows the last stream, not the timeout"
    probe.close()


def test_a_stream_longer_than_the_drain_timeout_is_cut_and_the_exit_is_still_0(
    spawn_gateway, sim, tmp_path
):
    process, reader = start(spawn_gateway, sim, tmp_path, drain_s=1, n_chunks=100)  # ~10 s
    signalled = time.monotonic()
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=GRACE_S) == 0
    assert time.monotonic() - signalled < 1 + 2 * CLOSE_TIMEOUT_S + 1  # drain, close, margin
    reader.join(5)
    last = orjson.loads(reader.events[-1][6:])  # never a silent cut: an error event ends it
    assert last["error"]["type"] == "unavailable", reader.events[-2:]
    assert "drain ended with 1 request(s) still running" in process.log()


def test_a_second_signal_ends_the_drain_at_once(spawn_gateway, sim, tmp_path):
    process, reader = start(spawn_gateway, sim, tmp_path, drain_s=30, n_chunks=100)
    process.signal(signal.SIGTERM)
    wait_until(lambda: get(f"{process.url}/readyz").status_code == 503, timeout=2)
    hurried = time.monotonic()
    process.signal(signal.SIGINT)
    assert process.wait(timeout=GRACE_S) == 0
    assert time.monotonic() - hurried < 3
    reader.join(5)


def test_idle_gateway_exits_at_once_on_sigterm(spawn_gateway, sim, tmp_path):
    config = gateway_config(sim.url, tmp_path, {"server": {"drain_timeout_s": 30}})
    process = spawn_gateway(config)
    signalled = time.monotonic()
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=GRACE_S) == 0
    assert time.monotonic() - signalled < 3
