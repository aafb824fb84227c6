"""CPU per request of the upstream HTTP client: aiohttp's ClientSession vs our UpstreamPool.

    .venv/bin/python tests/bench/client_cost.py [--requests 20000]

Why the gateway has its own HTTP/1.1 client (proxy/engine/http1.py): this sends the same small
chat request to the nginx fake upstream from one uvloop process, one request at a time and 32
at once, alternating the two clients twice, and prints the process's CPU time per request.
The fake upstream runs on the other core; this process is pinned to core 1 when there are two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402
from benchlib.procs import free_port, stop  # noqa: E402
from benchlib.targets import Env, start_upstream, venv_python  # noqa: E402

from proxy.config.snapshot import PoolSettings  # noqa: E402
from proxy.engine.connections import UpstreamPool  # noqa: E402

BODY = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi " * 80}]})
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
Send = Callable[[], Awaitable[None]]


async def per_request_us(send: Send, total: int, concurrency: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await send()

    await worker(20)  # warm: connections open
    started = time.process_time()
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / total * 1e6


async def measure(origin: str, total: int) -> None:
    url = f"{origin}/v1/chat/completions"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    pool = UpstreamPool(origin, PoolSettings(max_idle_per_host=64), 1000)

    async def with_aiohttp() -> None:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            orjson.loads(await response.read())

    async def with_ours() -> None:
        response = await pool.request("POST", url, HEADERS, BODY, 5.0, whole=True)
        orjson.loads(response.body)

    print("concurrency  client               CPU us/request")
    for concurrency in (1, 32):
        for name, send in [("aiohttp", with_aiohttp), ("UpstreamPool", with_ours)] * 2:
            cost = await per_request_us(send, total, concurrency)
            print(f"{concurrency:>11}  {name:<18} {cost:>8.1f}")
    await session.close()
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    two = (os.cpu_count() or 1) >= 2
    env = Env(
        repo=REPO, work=HERE / ".work" / "client-cost", upstream_port=free_port(),
        python=venv_python(REPO), cpu_loadgen=None, cpu_target=None,
        cpu_upstream="0" if two else None,
    )  # fmt: skip
    if two:
        os.sched_setaffinity(0, {1})
    upstream = start_upstream(env)
    try:
        uvloop.run(measure(f"http://127.0.0.1:{env.upstream_port}", args.requests))
    finally:
        stop(upstream)


if __name__ == "__main__":
    main()
