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

from benchlib.procs import Proc, free_port, start, stop  # noqa: E402
from benchlib.targets import gateway_command, gateway_config  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

SERVER_CPU, CLIENT_CPU = "1", 0
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


def run(client: Client, bodies: Callable[[int], bytes], n: int, expect: str | None) -> float:
    """Median seconds over ``n`` requests (after a short warm-up)."""
    for i in range(30):
        client.post(bodies(-1 - i))
    samples = []
    for i in range(n):
        elapsed, reply = client.post(bodies(i))
        if expect is not None and reply.getheader("x-llm-cache") != expect:
            raise RuntimeError(f"expected {expect}, got {reply.getheader('x-llm-cache')}")
        samples.append(elapsed)
    return statistics.median(samples)


def redis_rtt(url: str, key: bytes, n: int) -> float:
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
        return statistics.median(samples)

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
    args = parser.parse_args()
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
        shared = f"cache: {{enabled: true, backend: redis, redis_url: '{redis.url}'}}\n"
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
        plan: dict[str, tuple[int, Callable[[int], bytes], str | None]] = {
            "direct": (port, lambda _: direct_body, None),
            "off": (gateways["off"].port, distinct, None),
            "mem-miss": (gateways["memory"].port, distinct, "miss"),
            "mem-hit": (gateways["memory"].port, same, "hit"),
            "redis-miss": (gateways["redis"].port, distinct, "miss"),
            "redis-hit": (gateways["redis"].port, same, "hit"),
        }
        clients = {name: Client(p) for name, (p, _, _) in plan.items()}
        Client(gateways["memory"].port).post(same(0))
        Client(gateways["redis"].port).post(same(0))
        import redis as sync_redis

        (key,) = sync_redis.Redis.from_url(redis.url).keys("*")
        rounds: list[dict[str, float]] = []
        names = list(plan)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            got = {n: run(clients[n], plan[n][1], args.requests, plan[n][2]) for n in order}
            got["redis-rtt"] = redis_rtt(redis.url, key, args.requests)
            rounds.append(got)
            print(f"round {r + 1}: " + " ".join(f"{n}={v * 1000:.3f}" for n, v in got.items()))
        report(rounds)
    finally:
        for proc in procs:
            stop(proc)
        redis.stop()
    return 0


def report(rounds: list[dict[str, float]]) -> None:
    def med(name: str, added: bool = True) -> float:
        values = [r[name] - (r["direct"] if added else 0.0) for r in rounds]
        return statistics.median(values) * 1000

    print("\n| figure (c=1, median of rounds) | ms |\n|---|---|")
    print(f"| direct p50 | {med('direct', False):.3f} |")
    for name in ("off", "mem-miss", "mem-hit", "redis-miss", "redis-hit"):
        print(f"| {name} added p50 | {med(name):.3f} |")
    print(f"| redis-rtt (redis-py GET) p50 | {med('redis-rtt', False):.3f} |")
    off = med("off")
    print("\n| check | value | target |\n|---|---|---|")
    print(f"| mem-hit added / off added | {med('mem-hit') / off:.2f} | < 1 |")
    miss = (med("mem-miss") - off) / off * 100
    print(f"| mem-miss added vs off added | {miss:+.1f} % | within 5 % |")
    hit_over_rtt = med("redis-hit") - med("redis-rtt", False)
    print(f"| redis-hit added - redis RTT | {hit_over_rtt:.3f} ms | <= 0.3 ms |")


if __name__ == "__main__":
    sys.exit(main())
