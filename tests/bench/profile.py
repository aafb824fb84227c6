"""Profile llm-edge-agent under load with py-spy and print its hot spots.

    python tests/bench/profile.py [--workload small|claude|stream|large] [--seconds 20]
                                  [--connections 32] [--svg]

Starts the nginx fake upstream and one gateway worker (pinned like run.py), loads it with wrk
(or the stream timer for ``stream``) while ``py-spy record`` samples it, then prints the
functions with the most samples on-CPU: self (the function itself) and inclusive (it or
anything it called). py-spy is installed into tests/bench/.work/tools-venv when missing.
Raw stacks land in tests/bench/.work/profile/; ``--svg`` also writes a flame graph.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchlib import bodies, install, wrk  # noqa: E402
from benchlib.procs import free_port, pinned, start, stop  # noqa: E402
from benchlib.targets import (  # noqa: E402
    Env,
    gateway_command,
    gateway_config,
    start_upstream,
    venv_python,
)

WORK = HERE / ".work" / "profile"
BODY = {
    "small": "small_openai.json",
    "claude": "small_claude.json",
    "stream": "stream_openai.json",
    "large": "large_openai.json",
}


def hot_spots(raw: Path, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive) % of the event loop thread's samples per function, from py-spy's
    collapsed stacks. Other threads (the executor, watchfiles' anyio worker) sit blocked in
    a queue but py-spy here still reports them on-CPU, so they are left out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or frames[0].startswith("Thread._bootstrap"):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = 100.0 / total if total else 0.0
    return (
        [(f, c * share) for f, c in own.most_common(top)],
        [(f, c * share) for f, c in inclusive.most_common(top)],
    )


def children(raw: Path, parent: str, top: int = 10) -> list[tuple[str, float]]:
    """What ``parent`` (a frame name, or a prefix of one) spends its time in, as % of the
    event loop thread's samples."""
    calls: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if frames[0].startswith("Thread._bootstrap"):
            continue
        total += int(count)
        at = next((i for i, f in enumerate(frames) if f.startswith(parent)), None)
        if at is not None:
            calls[frames[at + 1] if at + 1 < len(frames) else "<self>"] += int(count)
    share = 100.0 / total if total else 0.0
    return [(f, c * share) for f, c in calls.most_common(top)]


def load(env: Env, port: int, workload: str, seconds: int, connections: int) -> None:
    body = env.bodies / BODY[workload]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    if workload == "stream":
        count = str(seconds * 800)
        cmd = [env.python, str(HERE / "ttft.py"), "--url", url, "--body", str(body)]
        cmd += ["--count", count, "--warmup", "0"]
        subprocess.run(pinned(cmd, env.cpu_loadgen), capture_output=True, timeout=seconds * 5)
    else:
        result = wrk.run(url, body, connections=connections, seconds=seconds, cpus=env.cpu_loadgen)
        print(f"load: {result.rps:.0f} req/s, p50 {result.p50_ms:.3f} ms, {result.errors} errors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(BODY), default="small")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--expand", action="append", default=[], help="also break down this frame's callees"
    )
    parser.add_argument("--svg", action="store_true", help="also write a flame graph SVG")
    args = parser.parse_args(argv)
    py_spy = install.ensure_py_spy(HERE / ".work")
    if py_spy is None:
        sys.exit("py-spy is not available")
    pin = (os.cpu_count() or 1) >= 2
    env = Env(
        repo=REPO, work=WORK, upstream_port=free_port(), python=venv_python(REPO),
        cpu_loadgen="0" if pin else None, cpu_target="1" if pin else None,
        cpu_upstream="1" if pin else None,
    )  # fmt: skip
    bodies.write_all(env.bodies)
    upstream = start_upstream(env)
    try:
        port = free_port()
        config = gateway_config(WORK / "gateway.yaml", env.upstream_port)
        gateway = start(
            "gateway", gateway_command(env.python, config, port, 1), port=port,
            log_dir=env.logs, cpus=env.cpu_target, ready_path="/readyz",
            env={"PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            profile(py_spy, gateway.pid, env, port, args)
        finally:
            stop(gateway)
    finally:
        stop(upstream)
    return 0


def profile(py_spy: Path, pid: int, env: Env, port: int, args: argparse.Namespace) -> None:
    load(env, port, args.workload, 2, args.connections)  # warm-up
    raw = WORK / f"{args.workload}.raw.txt"
    record = [str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--nolineno"]
    record += ["--duration", str(args.seconds), "--format", "raw", "--output", str(raw)]
    spy = threading.Thread(target=subprocess.run, args=(record,), kwargs={"capture_output": True})
    spy.start()
    load(env, port, args.workload, args.seconds, args.connections)
    spy.join()
    if args.svg:
        svg = WORK / f"{args.workload}.svg"
        flame = [str(py_spy), "record", "--pid", str(pid), "--duration", "5", "-o", str(svg)]
        loader = threading.Thread(target=load, args=(env, port, args.workload, 5, args.connections))
        loader.start()
        subprocess.run(flame, capture_output=True)
        loader.join()
        print(f"flame graph: {svg}")
    own, inclusive = hot_spots(raw, args.top)
    print(f"\nself time (% of on-CPU samples), workload {args.workload}:")
    for frame, pct in own:
        print(f"  {pct:5.1f}%  {frame}")
    print("\ninclusive time:")
    for frame, pct in inclusive:
        print(f"  {pct:5.1f}%  {frame}")
    for parent in args.expand:
        print(f"\ninside {parent}:")
        for frame, pct in children(raw, parent):
            print(f"  {pct:5.1f}%  {frame}")
    print(f"\nraw stacks: {raw}")


if __name__ == "__main__":
    sys.exit(main())
