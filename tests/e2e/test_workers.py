"""``serve --workers 2``: two processes share the port, both serve, both hot-reload, both drain
on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
from decimal import Decimal
from pathlib import Path

import orjson
import yaml

from tests.conftest import CLIENT_KEY, gateway_config, wait_until
from tests.e2e.live_config import dump, version_of, write_rename_over
from tests.http import get
from tests.prom import Samples, samples
from tests.sdk import openai_client


def test_two_workers_share_the_port_and_exit_cleanly(sim, spawn_gateway, tmp_path):
    config = gateway_config(sim.url, tmp_path)
    process = spawn_gateway(config, "--workers", "2")

    # SO_REUSEPORT spreads new connections over both workers; each answers with its pid.
    def both_workers_answer() -> set[int] | None:
        seen = {get(f"{process.url}/status").json()["pid"] for _ in range(40)}
        return seen if len(seen) == 2 else None

    pids = wait_until(both_workers_answer, timeout=20)
    assert process.popen.pid not in pids  # the parent only supervises
    client = openai_client(f"{process.url}/v1", CLIENT_KEY)
    for _ in range(10):
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "say: ok"}]
        )
        assert reply.choices[0].message.content == "ok"
    # Every worker watches the config itself: an edit reaches all of them.
    data = yaml.safe_load(config.read_text())
    data["models"]["gpt-4o"]["aliases"] = ["reloaded-alias"]
    write_rename_over(config, dump(data))
    new_version = version_of(config.read_bytes())

    def every_worker_reloaded() -> bool:
        answers = [get(f"{process.url}/status").json() for _ in range(40)]
        return {a["pid"] for a in answers} == pids and all(
            a["config"]["version"] == new_version for a in answers
        )

    wait_until(every_worker_reloaded, timeout=10)
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_workers_exit_when_their_supervisor_is_killed(sim, spawn_gateway, tmp_path):
    process = spawn_gateway(gateway_config(sim.url, tmp_path), "--workers", "2")

    def worker_pids() -> set[int]:
        return {get(f"{process.url}/status").json()["pid"] for _ in range(40)}

    pids = wait_until(lambda: (seen := worker_pids()) and len(seen) == 2 and seen, timeout=20)
    process.popen.kill()  # SIGKILL: nobody relays SIGTERM to the workers
    process.popen.wait(5)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # reaped by init soon; a zombie counts as gone
            return stat.read().split(") ")[1].startswith("Z")

    wait_until(lambda: all(gone(pid) for pid in pids), timeout=10)
    # No supervisor to clean up: the last worker out removed the sockets' directory.
    assert list(process.tmp_dir.iterdir()) == []


def test_a_scrape_of_any_worker_counts_every_workers_requests(sim, spawn_gateway, tmp_path):
    """SO_REUSEPORT hands each scrape to one worker; that worker adds its sibling's numbers,
    so every scrape gives the whole sidecar's counts and exact cost, never one worker's."""
    process = spawn_gateway(gateway_config(sim.url, tmp_path), "--workers", "2")
    (peers_dir,) = process.tmp_dir.glob("llm-edge-agent-*")
    wait_until(lambda: len(list(peers_dir.glob("*.sock"))) == 2, timeout=20)
    cost = Decimal(0)
    for _ in range(SENT):  # a client per request: new connections, spread over both workers
        with openai_client(f"{process.url}/v1", CLIENT_KEY) as c:
            raw = c.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": "say: ok"}]
            )
        cost += Decimal(raw.headers["x-llm-cost-usd"])
    served = [_requests(_local_samples(sock)) for sock in sorted(peers_dir.glob("*.sock"))]
    assert sum(served) == SENT and all(served), served  # both workers served some
    pids = set()
    for _ in range(20):
        pids.add(get(f"{process.url}/status").json()["pid"])  # a new connection: either worker
        reply = get(f"{process.url}/metrics")
        assert reply.status_code == 200
        scraped = samples(reply.text)
        assert scraped[("llm_edge_workers", frozenset())] == 2
        assert _requests(scraped) == SENT
        labels = frozenset({("model", "gpt-4o"), ("provider", "openai")})
        assert scraped[("llm_edge_cost_usd_total", labels)] == float(cost)
    assert len(pids) == 2
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not peers_dir.exists()  # the supervisor removes the sockets' directory


SENT = 24


def _local_samples(sock: Path) -> Samples:
    """One worker's own numbers, read from its socket as its sibling would."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    families = orjson.loads(data)["families"]
    return {
        (name, frozenset(labels.items())): value
        for family in families
        for name, labels, value in family[4]
    }


def _requests(scraped: Samples) -> float:
    return sum(v for (name, _), v in scraped.items() if name == "llm_edge_requests_total")
