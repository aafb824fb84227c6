"""Issue 18: ``/v1/responses`` passed through to OpenAI adds no more than ``/v1/chat/completions``.

    python3 tests/bench/responses_passthrough.py [--rounds 5] [--seconds 4] [--no-pin]

A short, targeted side-by-side run (the full ``run.py`` takes 8-10 minutes): the fake nginx
upstream answers both ``/v1/chat/completions`` and ``/v1/responses`` with ~1 KB canned bodies
(the same answer in each API's shape); wrk drives, in each round and in rotated order, the
direct path and llm-edge-agent (1 worker) with the ``small`` chat request and its Responses
equivalent, at concurrency 1 (latency percentiles) and 32 (throughput, gateway CPU time per
request). Added latency = gateway minus direct, same workload, same round; the medians over
rounds are reported. Prints a Markdown table and writes ``tests/bench/.work/responses.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import bodies, wrk  # noqa: E402
from benchlib.measure import smoke  # noqa: E402
from benchlib.procs import Proc, cpu_seconds, free_port, stop  # noqa: E402
from benchlib.targets import GATEWAY, Env, Route, _gateway, start_upstream, venv_python  # noqa: E402
from run import _cpus  # noqa: E402

WORKLOADS = {
    "chat": GATEWAY["small"],
    "responses": Route("/v1/responses", "small_responses.json"),
}


def _measure(proc: Proc | None, port: int, route: Route, env: Env, seconds: int) -> dict:
    url = f"http://127.0.0.1:{port}{route.path}"
    body = env.bodies / route.body
    c1 = wrk.run(url, body, connections=1, seconds=seconds, cpus=env.cpu_loadgen)
    before = cpu_seconds(proc.pids()) if proc else 0.0
    c32 = wrk.run(url, body, connections=32, seconds=seconds, cpus=env.cpu_loadgen)
    used = cpu_seconds(proc.pids()) - before if proc else 0.0
    assert c1.errors == 0 and c32.errors == 0, (route, c1, c32)
    return {
        "p50_ms": c1.p50_ms,
        "p90_ms": c1.p90_ms,
        "p99_ms": c1.p99_ms,
        "rps_c32": c32.rps,
        "cpu_us_per_req": used / c32.requests * 1e6 if proc and c32.requests else None,
    }


def _round(gateway: Proc, env: Env, seconds: int, shift: int) -> dict[str, dict]:
    cases = [(w, t) for w in WORKLOADS for t in ("direct", "ours")]
    cases = cases[shift % len(cases) :] + cases[: shift % len(cases)]
    out: dict[str, dict] = {}
    for workload, target in cases:
        route = WORKLOADS[workload]
        if target == "direct":
            out[f"direct/{workload}"] = _measure(None, env.upstream_port, route, env, seconds)
        else:
            out[f"ours/{workload}"] = _measure(gateway, gateway.port, route, env, seconds)
    return out


def _median(rounds: list[dict[str, dict]], key: str, field: str) -> float:
    return statistics.median(r[key][field] for r in rounds)


def _report(rounds: list[dict[str, dict]]) -> tuple[str, dict]:
    summary: dict[str, dict] = {}
    rows = [
        "| workload | added p50 ms | added p90 ms | added p99 ms | ours req/s c32 | "
        "ours CPU us/req c32 |",
        "|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        added = {
            f: statistics.median(
                r[f"ours/{workload}"][f] - r[f"direct/{workload}"][f] for r in rounds
            )
            for f in ("p50_ms", "p90_ms", "p99_ms")
        }
        figures = {
            **{f"added_{k}": v for k, v in added.items()},
            "rps_c32": _median(rounds, f"ours/{workload}", "rps_c32"),
            "cpu_us_per_req": _median(rounds, f"ours/{workload}", "cpu_us_per_req"),
        }
        summary[workload] = figures
        rows.append(
            f"| {WORKLOADS[workload].path} | {added['p50_ms']:.3f} | {added['p90_ms']:.3f} | "
            f"{added['p99_ms']:.3f} | {figures['rps_c32']:.0f} | "
            f"{figures['cpu_us_per_req']:.0f} |"
        )
    chat, responses = summary["chat"], summary["responses"]
    ratios = {
        "added_p50": responses["added_p50_ms"] / chat["added_p50_ms"],
        "cpu_per_req": responses["cpu_us_per_req"] / chat["cpu_us_per_req"],
        "rps_c32": responses["rps_c32"] / chat["rps_c32"],
    }
    rows.append("")
    rows.append(
        f"responses / chat: added p50 x{ratios['added_p50']:.2f}, CPU per request "
        f"x{ratios['cpu_per_req']:.2f}, throughput x{ratios['rps_c32']:.2f}"
    )
    return "\n".join(rows), {"workloads": summary, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs wrk and nginx (apt-get install wrk nginx)")
    work = HERE / ".work" / "responses"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    bodies.write_all(work / "bodies")
    loadgen, target, upstream_cpu = _cpus(not args.no_pin)
    repo = HERE.parents[1]
    env = Env(repo, work, free_port(), venv_python(repo), loadgen, target, upstream_cpu)
    upstream = start_upstream(env)
    gateway = None
    try:
        gateway = _gateway(1)(env)
        for route in WORKLOADS.values():
            ok, why, headers = smoke(gateway.port, route, env.bodies)
            assert ok and headers.get("x-llm-cost-usd"), (route, why)
        _round(gateway, env, 1, 0)  # warm-up
        rounds = [_round(gateway, env, args.seconds, i) for i in range(args.rounds)]
    finally:
        if gateway is not None:
            stop(gateway)
        stop(upstream)
    table, summary = _report(rounds)
    print(table)
    (work.parent / "responses.json").write_text(json.dumps({**summary, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
