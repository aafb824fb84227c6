"""``serve --workers 2``: two processes share the port, both serve, both hot-reload, both drain
on SIGTERM."""

from __future__ import annotations

import os
import signal

import openai
import yaml

from tests.conftest import CLIENT_KEY, gateway_config, wait_until
from tests.e2e.live_config import dump, version_of, write_rename_over
from tests.http import get


def test_two_workers_share_the_port_and_exit_cleanly(sim, spawn_gateway, tmp_path):
    config = gateway_config(sim.url, tmp_path)
    process = spawn_gateway(config, "--workers", "2")

    # SO_REUSEPORT spreads new connections over both workers; each answers with its pid.
    def both_workers_answer() -> set[int] | None:
        seen = {get(f"{process.url}/status").json()["pid"] for _ in range(40)}
        return seen if len(seen) == 2 else None

    pids = wait_until(both_workers_answer, timeout=20)
    assert process.popen.pid not in pids  # the parent only supervises
    client = openai.OpenAI(base_url=f"{process.url}/v1", api_key=CLIENT_KEY, max_retries=0)
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
