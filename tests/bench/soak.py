"""Memory soak and open-streams RSS of llm-edge-agent (issue 6: flat RSS, <= 200 MB @ 1,000).

    .venv/bin/python tests/bench/soak.py --minutes 10            # bounded by time
    .venv/bin/python tests/bench/soak.py --requests 200000       # ...or by count (10 min cap)
    .venv/bin/python tests/bench/soak.py --open-streams 1000     # RSS with 1,000 open streams

The soak drives a mix through one gateway worker: small chats to OpenAI and (translated)
Anthropic upstreams, full streams of both, 200 KB requests, and streams the client abandons
after the first chunk. RSS of the gateway's process tree is sampled all along; the verdict
compares every sample after the warm-up to the first one (flat = within +-10%). The fake
upstream is ``fake_upstream.py`` with a per-event delay so streams really stay open.
Results go to ``tests/bench/.work/soak.json`` / ``open-streams.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

try:
    import aiohttp
except ImportError:  # re-run under the repo venv, which has aiohttp
    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.executable) != venv:
        os.execv(str(venv), [str(venv), *sys.argv])
    raise

from benchlib import bodies  # noqa: E402
from benchlib.procs import Proc, free_port, process_tree, rss_mb, start, stop  # noqa: E402
from benchlib.targets import gateway_command, gateway_config, venv_python  # noqa: E402

WORK = HERE / ".work" / "soak"
MIX = {"small": 50, "claude": 10, "stream": 12, "stream_claude": 8, "abandon": 15, "large": 5}
BODY = {
    "small": "small_openai.json",
    "claude": "small_claude.json",
    "stream": "stream_openai.json",
    "stream_claude": "stream_claude.json",
    "abandon": "stream_openai.json",
    "large": "large_openai.json",
}


def start_pair(chunk_delay_ms: float, max_connections: int) -> tuple[Proc, Proc]:
    """The asyncio fake upstream (core 0) and a 1-worker gateway (core 1)."""
    logs, python = WORK / "logs", venv_python(REPO)
    pin = (os.cpu_count() or 1) >= 2
    up_port, port = free_port(), free_port()
    cmd = [python, str(HERE / "fake_upstream.py"), "--port", str(up_port)]
    cmd += ["--chunk-delay-ms", str(chunk_delay_ms)]
    upstream = start("upstream", cmd, port=up_port, log_dir=logs, cpus="0" if pin else None)
    config = gateway_config(WORK / "gateway.yaml", up_port, max_connections)
    try:
        gateway = start(
            "gateway",
            gateway_command(python, config, port, 1),
            port=port,
            log_dir=logs,
            cpus="1" if pin else None,
            ready_path="/readyz",
            env={"PYTHONPATH": str(REPO)},
        )
    except Exception:
        stop(upstream)
        raise
    return upstream, gateway


async def one(session: aiohttp.ClientSession, url: str, kind: str, payload: bytes) -> None:
    async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        if kind == "abandon":
            await r.content.readany()
            r.close()  # drop the connection mid-stream, as an impatient client does
        else:
            await r.read()


async def soak(url: str, gateway: Proc, args: argparse.Namespace) -> dict:
    payloads = {kind: bodies.requests()[name] for kind, name in BODY.items()}
    schedule = [k for k, weight in MIX.items() for _ in range(weight)]
    random.Random(6).shuffle(schedule)
    deadline = time.monotonic() + args.minutes * 60
    budget = args.requests or 10**12
    sent, done, errors = Counter(), Counter(), Counter()
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    async def worker(n: int, session: aiohttp.ClientSession) -> None:
        i = n
        while time.monotonic() < deadline and sum(sent.values()) < budget:
            kind = schedule[i % len(schedule)]
            i += args.concurrency
            sent[kind] += 1
            try:
                await one(session, url, kind, payloads[kind])
                done[kind] += 1
            except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
                errors[f"{kind}: {exc}"[:120]] += 1

    async def sampler() -> None:
        while True:
            samples.append((time.monotonic() - t0, rss_mb(process_tree(gateway.pid))))
            await asyncio.sleep(args.sample_s)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(worker(n, session) for n in range(args.concurrency)))
        sampling.cancel()
    samples.append((time.monotonic() - t0, rss_mb(process_tree(gateway.pid))))
    return verdict(samples, sent, done, errors, time.monotonic() - t0, args)


def verdict(samples, sent, done, errors, seconds, args) -> dict:  # type: ignore[no-untyped-def]
    warm = min(30.0, 0.1 * seconds)
    after = [rss for t, rss in samples if t >= warm] or [samples[-1][1]]
    first = after[0]
    flat = max(after) <= first * 1.1 and min(after) >= first * 0.9
    return {
        "seconds": round(seconds, 1),
        "requests": sum(sent.values()),
        "completed": dict(done),
        "errors": dict(errors.most_common(10)),
        "rps": round(sum(sent.values()) / seconds, 1),
        "rss_mb": {
            "at_start": samples[0][1],
            "first_after_warmup": first,
            "last": after[-1],
            "max": max(after),
            "min": min(after),
            "drift_pct": round((after[-1] - first) / first * 100, 2),
        },
        "flat_within_10pct": flat,
        "samples": [(round(t, 1), round(r, 2)) for t, r in samples],
        "mix": MIX,
        "concurrency": args.concurrency,
    }


async def open_streams(url: str, gateway: Proc, count: int) -> dict:
    """Open ``count`` streams at once, wait until each has its first chunk, sample RSS."""
    payload = bodies.requests()["stream_openai.json"]
    opened = 0
    all_open = asyncio.Event()

    async def stream(session: aiohttp.ClientSession) -> None:
        nonlocal opened
        headers = {"content-type": "application/json"}
        async with session.post(url, data=payload, headers=headers) as r:
            await r.content.readany()
            opened += 1
            if opened == count:
                all_open.set()
            async for _chunk in r.content.iter_any():
                pass

    await asyncio.sleep(1)
    idle = rss_mb(process_tree(gateway.pid))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(stream(session)) for _ in range(count)]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_open.wait(), 90)
        peak = 0.0
        for _ in range(10):
            peak = max(peak, rss_mb(process_tree(gateway.pid)))
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(3)
    return {
        "streams": count,
        "opened": opened,
        "rss_idle_mb": idle,
        "rss_open_mb": peak,
        "rss_after_close_mb": rss_mb(process_tree(gateway.pid)),
        "within_200mb": peak <= 200,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="time bound (default 10)")
    parser.add_argument("--requests", type=int, default=0, help="count bound (0 = time only)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--open-streams", type=int, default=0, metavar="N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    WORK.mkdir(parents=True, exist_ok=True)
    n = args.open_streams
    upstream, gateway = start_pair(500 if n else 1, n + 100 if n else 100)
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    try:
        if n:
            result, out = asyncio.run(open_streams(url, gateway, n)), WORK / "open-streams.json"
        else:
            result, out = asyncio.run(soak(url, gateway, args)), WORK / "soak.json"
        result["gateway_alive"] = gateway.alive()
    finally:
        stop(gateway)
        stop(upstream)
    out.write_text(json.dumps(result, indent=2))
    shown = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
