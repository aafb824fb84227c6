"""Issue 17: the latency budgets and rate limits add, limits off / memory / Redis, one run.

    python tests/bench/limits_overhead.py [--rounds 2000]

Starts the raw-asyncio fake upstream, a real ``redis-server`` and three gateways (``serve``
subprocesses) that differ only in their ``limits:`` section (two budgets and a rate limit
for memory and for Redis). Each round sends one small non-streaming request to each gateway
in turn over its own keep-alive connection, so load and noise hit the three alike; the
report is each gateway's median and p90 latency and the difference to limits off.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.bodies import requests  # noqa: E402

from proxy.sim.runner import free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

LIMITS = """
limits:
  backend: {backend}
  redis_url: {redis_url}
  budgets:
    - {{name: daily, usd: 1000000, period: day}}
    - {{name: small-hourly, usd: 1000000, period: hour, models: [bench-small]}}
  rate_limits:
    - {{name: rpm, models: [bench-small], requests_per_minute: 100000000}}
"""


def _config(directory: Path, upstream: int, limits: str) -> Path:
    template = (REPO / "tests/bench/templates/gateway.yaml.tmpl").read_text()
    text = template.replace("{{UPSTREAM_PORT}}", str(upstream))
    text = text.replace("{{MAX_CONNECTIONS}}", "100") + limits
    path = directory / f"config-{len(list(directory.iterdir()))}.yaml"
    path.write_text(text)
    return path


def _wait(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers on {port}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    body = requests()["small_openai.json"]
    processes: list[subprocess.Popen[bytes]] = []
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            upstream = free_port()
            fake = REPO / "tests/bench/fake_upstream.py"
            processes.append(subprocess.Popen([sys.executable, str(fake), "--port", str(upstream)]))
            variants = {
                "off": "",
                "memory": LIMITS.format(backend="memory", redis_url=redis.url),
                "redis": LIMITS.format(backend="redis", redis_url=redis.url),
            }
            ports = {}
            for name, limits in variants.items():
                port = ports[name] = free_port()
                config = _config(directory, upstream, limits)
                command = [sys.executable, "-m", "proxy", "serve", "--config", str(config)]
                command += ["--port", str(port), "--no-watch"]
                env = {**os.environ, "TMPDIR": tmp}
                processes.append(
                    subprocess.Popen(command, env=env, cwd=tmp, stderr=subprocess.DEVNULL)
                )
            for port in ports.values():
                _wait(port, time.monotonic() + 90)
            results = _measure(ports, body, args.rounds)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        redis.stop()
    _report(results, args.rounds)
    return 0


def _measure(ports: dict[str, int], body: bytes, rounds: int) -> dict[str, list[float]]:
    connections = {n: http.client.HTTPConnection("127.0.0.1", p) for n, p in ports.items()}
    headers = {"content-type": "application/json"}
    times: dict[str, list[float]] = {name: [] for name in ports}
    for i in range(rounds + 200):
        for name, connection in connections.items():
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", body, headers)
            reply = connection.getresponse()
            reply.read()
            elapsed = time.perf_counter() - started
            assert reply.status == 200, (name, reply.status)
            if i >= 200:  # warm-up: pools, scripts loaded, caches filled
                times[name].append(elapsed)
    return times


def _report(times: dict[str, list[float]], rounds: int) -> None:
    off = statistics.median(times["off"])
    print(f"{rounds} rounds, one request per gateway per round (interleaved)")
    print(f"{'limits':8} {'median ms':>10} {'p90 ms':>8} {'added median us':>16}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        added = (median - off) * 1e6
        print(f"{name:8} {median * 1e3:10.3f} {p90 * 1e3:8.3f} {added:16.1f}")


if __name__ == "__main__":
    sys.exit(main())
