"""Response cache benchmark (issue 16): added latency at concurrency 1, side by side in one run.

Targets, each its own gateway process on the benchmark's fake upstream (``fake_upstream.py``),
gateways and upstream pinned to one core, this client to the other:

- ``off``        the cache off; distinct requests (a counter in the prompt)
- ``mem-miss``   memory backend, the same distinct requests: every one a miss (and a store)
- ``mem-hit``    memory backend, one request repeated: every one a hit
- ``redis-miss`` / ``redis-hit``  the same on a local ``redis-server``
- ``redis-rtt``  a Redis GET of a stored answer with redis-py's asyncio client (what the
  gateway uses), the round trip a Redis hit cannot avoid, measured from the gateways' core
  (where the gateway's own GET runs; ``redis-server`` sits on the client's core, so from
  there the GET would never cross cores); ``redis-rtt-client`` the same from the client's core

Each target has a gateway process of its own, and a round sends one request to each target in
turn, ``--requests`` times, so a slow moment of the shared box slows every target alike.
"Added" = the target's median minus the direct path's (same round). Rounds rotate the order;
each figure is the median over rounds. Run: ``.venv/bin/python
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


class Target:
    """One target's client, bodies and samples over a round."""

    def __init__(self, proc: Proc, bodies: Callable[[int], bytes], expect: str | None) -> None:
        self.proc, self.bodies, self.expect = proc, bodies, expect
        self.client = Client(proc.port)
        self.samples: list[float] = []
        self.overheads: list[float] = []
        self.cpu_before = 0.0

    def post(self, i: int) -> None:
        elapsed, reply = self.client.post(self.bodies(i))
        if self.expect is not None and reply.getheader("x-llm-cache") != self.expect:
            raise RuntimeError(f"expected {self.expect}, got {reply.getheader('x-llm-cache')}")
        self.samples.append(elapsed)
        self.overheads.append(float(reply.getheader("x-llm-overhead-ms") or 0) / 1000)


def run(targets: dict[str, Target], n: int, rotate: int) -> dict[str, Figures]:
    """``n`` requests to each target, interleaved one by one (so a slow moment of the box
    slows every target alike), after a warm-up: p10 and p50 seconds, each gateway's CPU
    seconds per request (utime+stime from /proc), its self-reported overhead p50."""
    names = list(targets)
    order = names[rotate % len(names) :] + names[: rotate % len(names)]
    for i in range(30):
        for name in order:
            targets[name].post(-1 - i)
    for target in targets.values():
        target.samples, target.overheads = [], []
        target.cpu_before = cpu_seconds(target.proc.pids())
    for i in range(n):
        for name in order:
            targets[name].post(i)
    got = {}
    for name, target in targets.items():
        samples = sorted(target.samples)
        got[name] = {
            "p10": samples[len(samples) // 10],
            "p50": statistics.median(samples),
            "cpu": (cpu_seconds(target.proc.pids()) - target.cpu_before) / n,
            "overhead": statistics.median(target.overheads),
        }
    return got


def redis_rtt(url: str, key: bytes, n: int, cpu: str | None) -> Figures:
    """A GET's round trip from ``cpu`` (None: where this process runs)."""
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

    if cpu is None:
        return asyncio.run(measure())
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(cpu)})
    try:
        return asyncio.run(measure())
    finally:
        os.sched_setaffinity(0, before)


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
        # One gateway per target, so each one's CPU per request is its own.
        gateways = {
            "off": gateway("off", work, port, None),
            "mem-miss": gateway("mem-miss", work, port, memory),
            "mem-hit": gateway("mem-hit", work, port, memory),
            "redis-miss": gateway("redis-miss", work, port, shared),
            "redis-hit": gateway("redis-hit", work, port, shared),
        }
        procs.extend(gateways.values())
        counter = iter(range(10**9))

        def distinct(_: int) -> bytes:
            return body("bench-small", f"Hello number {next(counter)}")

        def same(_: int) -> bytes:
            return body("bench-small", "Hello, the same again")

        direct_body = body("gpt-4o", "Hello number 0")
        targets = {
            "direct": Target(upstream, lambda _: direct_body, None),
            "off": Target(gateways["off"], distinct, None),
            "mem-miss": Target(gateways["mem-miss"], distinct, "miss"),
            "mem-hit": Target(gateways["mem-hit"], same, "hit"),
            "redis-miss": Target(gateways["redis-miss"], distinct, "miss"),
            "redis-hit": Target(gateways["redis-hit"], same, "hit"),
        }
        targets["mem-hit"].client.post(same(0))
        targets["redis-hit"].client.post(same(0))
        import redis as sync_redis

        (key,) = sync_redis.Redis.from_url(redis.url).keys("*")
        rounds: list[dict[str, Figures]] = []
        for r in range(args.rounds):
            got = run(targets, args.requests, r)
            got["redis-rtt"] = redis_rtt(redis.url, key, args.requests, SERVER_CPU)
            got["redis-rtt-client"] = redis_rtt(redis.url, key, args.requests, None)
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
    for name, where in (("redis-rtt", "gateways' core"), ("redis-rtt-client", "client's core")):
        print(
            f"| redis GET (redis-py, from the {where}) | {med(name, 'p10'):.3f} (abs) "
            f"| {med(name, 'p50'):.3f} (abs) | | |"
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
    extra = [med("redis-hit", q) - med("mem-hit", q) - med("redis-rtt", q) for q in ("p10", "p50")]
    print(
        f"| redis-hit - mem-hit - Redis GET (Redis's cost to a hit beyond its round trip) "
        f"| {extra[0]:.3f} ms | {extra[1]:.3f} ms | |"
    )


if __name__ == "__main__":
    sys.exit(main())
