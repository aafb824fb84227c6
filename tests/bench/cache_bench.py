"""Response cache benchmark (issue 16): added latency at concurrency 1, side by side in one run.

Targets, each its own gateway process on the benchmark's fake upstream (``fake_upstream.py``),
gateways and upstream pinned to one core, this client to the other:

- ``off``        the cache off; distinct requests (a counter in the prompt)
- ``mem-miss``   memory backend, the same distinct requests: every one a miss (and a store)
- ``mem-hit``    memory backend, one request repeated: every one a hit
- ``redis-miss`` / ``redis-hit``  the same on a local ``redis-server``
- ``redis-rtt``  a Redis GET of a stored answer with redis-py's asyncio client (what the
  gateway uses), the round trip a Redis hit cannot avoid

"Added" = the target's median minus the direct path's (same body, same round). Rounds rotate
the order; each figure is the median over rounds. Run: ``.venv/bin/python
tests/bench/cache_bench.py [--rounds 5] [--requests 400]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.procs import Proc, cpu_seconds, free_port, start, stop  # noqa: E402
from benchlib.targets import gateway_command, gateway_config  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

SERVER_CPU: str | None = "1"
CLIENT_CPU = 0  # as run.py: the client on core 0, servers on core 1
PATH = "/v1/chat/completions"


def body(model: str, text: str) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


class Client:
    """One keep-alive connection; ``post`` returns (seconds, response headers)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, data: bytes) -> tuple[float, http.client.HTTPResponse]:
        headers = {"content-type": "application/json", "authorization": "Bearer x"}
        started = time.perf_counter()
        self.conn.request("POST", PATH, data, headers)
        reply = self.conn.getresponse()
        reply.read()
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise RuntimeError(f"status {reply.status}")
        return elapsed, reply


Figures = dict[str, float]


def run(
    client: Client, bodies: Callable[[int], bytes], n: int, expect: str | None, proc: Proc | None
) -> Figures:
    """Over ``n`` requests (after a warm-up): p10 and p50 seconds, the gateway's CPU seconds
    per request (utime+stime from /proc), and its self-reported overhead p50."""
    for i in range(30):
        client.post(bodies(-1 - i))
    samples, overheads = [], []
    cpu_before = cpu_seconds(proc.pids()) if proc is not None else 0.0
    for i in range(n):
        elapsed, reply = client.post(bodies(i))
        if expect is not None and reply.getheader("x-llm-cache") != expect:
            raise RuntimeError(f"expected {expect}, got {reply.getheader('x-llm-cache')}")
        samples.append(elapsed)
        overheads.append(float(reply.getheader("x-llm-overhead-ms") or 0) / 1000)
    cpu = (cpu_seconds(proc.pids()) - cpu_before) / n if proc is not None else 0.0
    samples.sort()
    return {
        "p10": samples[len(samples) // 10],
        "p50": statistics.median(samples),
        "cpu": cpu,
        "overhead": statistics.median(overheads),
    }


def redis_rtt(url: str, key: bytes, n: int) -> Figures:
    import redis.asyncio as aioredis

    async def measure() -> float:
        client = aioredis.Redis.from_url(url)
        for _ in range(30):
            await client.get(key)
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await client.get(key)
            samples.append(time.perf_counter() - started)
        await client.aclose()
        samples.sort()
        return {"p10": samples[len(samples) // 10], "p50": statistics.median(samples)}

    return asyncio.run(measure())


def gateway(name: str, work: Path, upstream: int, cache: str | None) -> Proc:
    config = gateway_config(work / f"{name}.yaml", upstream)
    if cache is not None:
        with config.open("a") as out:
            out.write(cache)
    port = free_port()
    python = str(REPO / ".venv" / "bin" / "python")
    return start(
        name, gateway_command(python, config, port, 1), port=port, log_dir=work / "logs",
        cpus=SERVER_CPU, ready_path="/readyz", env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place all")
    args = parser.parse_args()
    global SERVER_CPU
    if args.no_pin:
        SERVER_CPU = None
    else:
        os.sched_setaffinity(0, {CLIENT_CPU})
    work = Path(tempfile.mkdtemp(prefix="lea-cache-bench-"))
    redis = RedisServer().start()
    procs: list[Proc] = []
    try:
        port = free_port()
        python = str(REPO / ".venv" / "bin" / "python")
        upstream = start(
            "upstream", [python, str(REPO / "tests/bench/fake_upstream.py"), "--port", str(port)],
            port=port, log_dir=work / "logs", cpus=SERVER_CPU,
        )  # fmt: skip
        procs.append(upstream)
        memory = "cache: {enabled: true, backend: memory}\n"
        # A generous Redis deadline: on a loaded box a 50 ms one turns some hits into misses.
        shared = (
            f"cache: {{enabled: true, backend: redis, redis_url: '{redis.url}', "
            "redis_timeout_ms: 1000}\n"
        )
        gateways = {
            "off": gateway("off", work, port, None),
            "memory": gateway("memory", work, port, memory),
            "redis": gateway("redis", work, port, shared),
        }
        procs.extend(gateways.values())
        counter = iter(range(10**9))

        def distinct(_: int) -> bytes:
            return body("bench-small", f"Hello number {next(counter)}")

        def same(_: int) -> bytes:
            return body("bench-small", "Hello, the same again")

        direct_body = body("gpt-4o", "Hello number 0")
        plan: dict[str, tuple[Proc, Callable[[int], bytes], str | None]] = {
            "direct": (upstream, lambda _: direct_body, None),
            "off": (gateways["off"], distinct, None),
            "mem-miss": (gateways["memory"], distinct, "miss"),
            "mem-hit": (gateways["memory"], same, "hit"),
            "redis-miss": (gateways["redis"], distinct, "miss"),
            "redis-hit": (gateways["redis"], same, "hit"),
        }
        clients = {name: Client(p.port) for name, (p, _, _) in plan.items()}
        Client(gateways["memory"].port).post(same(0))
        Client(gateways["redis"].port).post(same(0))
        import redis as sync_redis

        (key,) = sync_redis.Redis.from_url(redis.url).keys("*")
        rounds: list[dict[str, Figures]] = []
        names = list(plan)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            got = {}
            for n in order:
                proc, bodies, expect = plan[n]
                got[n] = run(clients[n], bodies, args.requests, expect, proc)
            got["redis-rtt"] = redis_rtt(redis.url, key, args.requests)
            rounds.append(got)
            print(
                f"round {r + 1}: " + " ".join(f"{n}={v['p50'] * 1000:.3f}" for n, v in got.items())
            )
        report(rounds)
    finally:
        for proc in procs:
            stop(proc)
        redis.stop()
    return 0


def report(rounds: list[dict[str, Figures]]) -> None:
    def med(name: str, figure: str, added: bool = False) -> float:
        """Milliseconds (or CPU microseconds), median over rounds."""
        values = [r[name][figure] - (r["direct"][figure] if added else 0.0) for r in rounds]
        return statistics.median(values) * (1e6 if figure == "cpu" else 1000)

    print("\n| target | added p10 ms | added p50 ms | overhead p50 ms | CPU us/request |")
    print("|---|---|---|---|---|")
    print(f"| direct | {med('direct', 'p10'):.3f} (abs) | {med('direct', 'p50'):.3f} (abs) | | |")
    for name in ("off", "mem-miss", "mem-hit", "redis-miss", "redis-hit"):
        print(
            f"| {name} | {med(name, 'p10', True):.3f} | {med(name, 'p50', True):.3f} "
            f"| {med(name, 'overhead'):.3f} | {med(name, 'cpu'):.0f} |"
        )
    print(
        f"| redis GET (redis-py) | {med('redis-rtt', 'p10'):.3f} (abs) "
        f"| {med('redis-rtt', 'p50'):.3f} (abs) | | |"
    )
    print("\n| check | p10 | p50 | target |\n|---|---|---|---|")
    ratio = [med("mem-hit", q, True) / med("off", q, True) for q in ("p10", "p50")]
    print(f"| mem-hit added / off added | {ratio[0]:.2f} | {ratio[1]:.2f} | < 1 |")
    miss = [
        (med("mem-miss", q, True) - med("off", q, True)) / med("off", q, True) * 100
        for q in ("p10", "p50")
    ]
    print(f"| mem-miss added vs off added | {miss[0]:+.1f} % | {miss[1]:+.1f} % | within 5 % |")
    cpu = (med("mem-miss", "cpu") - med("off", "cpu")) / med("off", "cpu") * 100
    print(f"| mem-miss CPU/request vs off | {cpu:+.1f} % | | |")
    over = [med("redis-hit", q, True) - med("redis-rtt", q) for q in ("p10", "p50")]
    print(f"| redis-hit added - Redis GET | {over[0]:.3f} ms | {over[1]:.3f} ms | <= 0.3 ms |")


if __name__ == "__main__":
    sys.exit(main())
