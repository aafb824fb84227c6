"""Side-by-side latency of two checkouts of the gateway, in one run (issue 15's "no regression").

    .venv/bin/python tests/bench/ab_latency.py --base /path/to/other/checkout [--requests 2000]

Starts the asyncio fake upstream once, then the gateway of each checkout (``PYTHONPATH`` picks
the code) with the benchmark config, and sends the benchmark's request bodies one at a time on
a keep-alive connection, alternating checkouts in rounds so both see the same machine load.
Prints the median and p90 per workload and checkout and the ratio (this checkout / base).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchlib.bodies import requests  # noqa: E402
from benchlib.targets import gateway_config  # noqa: E402

WORKLOADS = {"small": "small_openai.json", "small_claude": "small_claude.json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not answer")


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    quiet = subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir(), stdout=quiet, stderr=quiet)


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(port: int, body: bytes, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    out = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - started)
        assert response.status == 200, response.status
    conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True, help="the other checkout")
    parser.add_argument("--this", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--requests", type=int, default=2000, help="per workload and checkout")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ab-"))
    upstream_port = _free_port()
    procs = [_start([sys.executable, str(HERE / "fake_upstream.py"), "--port",
                     str(upstream_port)], dict(os.environ))]  # fmt: skip
    config = gateway_config(work / "gateway.yaml", upstream_port, access_log=False)
    trees = {"this": args.this.resolve(), "base": args.base.resolve()}
    ports, pids = {}, {}
    try:
        _wait(upstream_port, "/v1/models")
        for name, tree in trees.items():
            ports[name] = _free_port()
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, "-m", "proxy", "serve", "--config", str(config),
                   "--port", str(ports[name]), "--no-watch"]  # fmt: skip
            procs.append(_start(cmd, env))
            pids[name] = procs[-1].pid
            _wait(ports[name])
        bodies = requests()
        samples: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], float] = {}
        per_round = max(args.requests // args.rounds, 1)
        for workload, file in WORKLOADS.items():
            for name in trees:  # warm-up
                _round(ports[name], bodies[file], 200)
            for i in range(args.rounds):
                order = list(trees) if i % 2 == 0 else list(reversed(trees))
                for name in order:
                    before = _cpu_s(pids[name])
                    samples.setdefault((workload, name), []).extend(
                        _round(ports[name], bodies[file], per_round)
                    )
                    cpu[(workload, name)] = cpu.get((workload, name), 0.0) + (
                        _cpu_s(pids[name]) - before
                    )
        _report(samples, cpu)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    return 0


def _report(samples: dict[tuple[str, str], list[float]], cpu: dict[tuple[str, str], float]) -> None:
    print("| workload | base p50 ms | this p50 ms | ratio p50 | base p90 ms | this p90 ms "
          "| base CPU us/req | this CPU us/req | ratio CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for workload in WORKLOADS:
        base, this = samples[(workload, "base")], samples[(workload, "this")]
        p50b, p50t = statistics.median(base) * 1e3, statistics.median(this) * 1e3
        p90b = statistics.quantiles(base, n=10)[-1] * 1e3
        p90t = statistics.quantiles(this, n=10)[-1] * 1e3
        cpub = cpu[(workload, "base")] / len(base) * 1e6
        cput = cpu[(workload, "this")] / len(this) * 1e6
        print(f"| {workload} | {p50b:.3f} | {p50t:.3f} | {p50t / p50b:.3f} | "
              f"{p90b:.3f} | {p90t:.3f} | {cpub:.0f} | {cput:.0f} | "
              f"{cput / cpub:.3f} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
