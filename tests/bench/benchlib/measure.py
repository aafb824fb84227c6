"""Run every workload against one started target and collect its figures.

``prepare`` smoke-checks each route (one request, must be 200 with the right body shape),
warms up and takes the idle RSS; ``measure_round`` runs wrk at concurrency 1 / 8 / 32 per
non-streaming workload (CPU time and peak RSS around the concurrency-32 runs) and the stream
timer; run.py calls it for every target in turn, several rounds, and ``finish`` keeps the
median of each figure. A route that fails its smoke check is recorded and skipped.
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import wrk
from benchlib.procs import Proc, RssSampler, cpu_seconds, pinned, rss_mb
from benchlib.targets import Env, Route, Target

TTFT = Path(__file__).resolve().parent.parent / "ttft.py"
LEVELS = {"small": (1, 8, 32), "small_anthropic": (1, 32), "large": (1, 32)}
STREAMS = ("stream", "stream_anthropic")


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs; ``quick`` is a smoke run of a few seconds each."""

    rounds: int = 3
    c1_s: int = 3
    c8_s: int = 3
    c32_s: int = 4
    warmup_s: int = 2
    stream_count: int = 150
    stream_warmup: int = 10

    @classmethod
    def quick(cls) -> Plan:
        return cls(rounds=1, c1_s=2, c8_s=2, c32_s=2, warmup_s=1, stream_count=50, stream_warmup=5)

    def seconds(self, connections: int) -> int:
        return {1: self.c1_s, 8: self.c8_s}.get(connections, self.c32_s)


def smoke(port: int, route: Route, bodies: Path) -> tuple[bool, str, dict[str, str]]:
    """One request; (ok, reason, response headers). Streams must carry SSE ``data:``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"content-type": "application/json", **route.headers}
        conn.request("POST", route.path, (bodies / route.body).read_bytes(), headers)
        response = conn.getresponse()
        body = response.read()
        got = {k.lower(): v for k, v in response.getheaders()}
    except OSError as exc:
        return False, f"request failed: {exc}", {}
    finally:
        conn.close()
    if response.status != 200:
        return False, f"HTTP {response.status}: {body[:200]!r}", got
    if route.body.startswith("stream") and b"data:" not in body:
        return False, f"no SSE events in the stream body: {body[:200]!r}", got
    if not route.body.startswith("stream"):
        try:
            json.loads(body)
        except ValueError:
            return False, f"not JSON: {body[:200]!r}", got
    return True, "ok", got


def stream_timing(env: Env, port: int, route: Route, plan: Plan) -> dict:
    cmd = [
        env.python,
        str(TTFT),
        "--url",
        f"http://127.0.0.1:{port}{route.path}",
        "--body",
        str(env.bodies / route.body),
        "--count",
        str(plan.stream_count),
        "--warmup",
        str(plan.stream_warmup),
    ]
    for name, value in route.headers.items():
        cmd += ["--header", f"{name}: {value}"]
    out = subprocess.run(pinned(cmd, env.cpu_loadgen), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    return json.loads(out.stdout)


def _loaded_run(proc: Proc, url: str, body: Path, route: Route, env: Env, plan: Plan) -> dict:
    """wrk at concurrency 32 with the target's CPU time and peak RSS around it."""
    before = cpu_seconds(proc.pids())
    with RssSampler(proc.pid) as sampler:
        result = wrk.run(
            url,
            body,
            connections=32,
            seconds=plan.c32_s,
            cpus=env.cpu_loadgen,
            headers=route.headers,
        )
    used = cpu_seconds(proc.pids()) - before
    figures = result.as_dict()
    figures["cpu_s"] = used
    figures["cpu_us_per_req"] = used / result.requests * 1e6 if result.requests else None
    figures["rss_peak_mb"] = sampler.peak
    return figures


def scrape_overhead(port: int) -> dict | None:
    """Mean of the gateway's self-reported overhead histogram in /metrics, if it has one."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode(errors="replace")
    except OSError:
        return None
    finally:
        conn.close()
    sums = re.findall(r"^(\w*overhead\w*)_sum(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    counts = re.findall(r"^(\w*overhead\w*)_count(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    if not sums or not counts:
        return None
    total = sum(float(v) for _, v in sums)
    count = sum(float(v) for _, v in counts)
    unit_ms = 1.0 if "_ms" in sums[0][0] else 1000.0
    return {
        "metric": sums[0][0],
        "count": count,
        "mean_ms": total / count * unit_ms if count else None,
    }


@dataclass
class Session:
    """A started target under measurement: its routes that passed the smoke check."""

    target: Target
    proc: Proc
    usable: dict[str, Route]
    info: dict


def prepare(target: Target, proc: Proc, env: Env, plan: Plan) -> Session:
    """Smoke-check every route, warm up, and take the idle RSS."""
    info: dict = {"name": target.name, "label": target.label, "rss_start_mb": rss_mb(proc.pids())}
    info["smoke"] = {}
    for workload, route in target.routes.items():
        ok, reason, headers = smoke(proc.port, route, env.bodies)
        info["smoke"][workload] = reason
        if "x-llm-overhead-ms" in headers:
            info.setdefault("overhead_header_ms", {})[workload] = headers["x-llm-overhead-ms"]
        if not ok:
            print(f"  {target.name}: {workload} skipped: {reason}", flush=True)
    usable = {w: r for w, r in target.routes.items() if info["smoke"][w] == "ok"}
    if "small" in usable:
        url = f"http://127.0.0.1:{proc.port}{usable['small'].path}"
        wrk.run(
            url,
            env.bodies / usable["small"].body,
            connections=8,
            seconds=plan.warmup_s,
            cpus=env.cpu_loadgen,
        )
    time.sleep(1)
    info["rss_idle_mb"] = rss_mb(proc.pids())
    return Session(target, proc, usable, info)


def measure_round(session: Session, env: Env, plan: Plan) -> dict:
    """One pass of every workload: wrk per level, then the stream timer."""
    proc, name = session.proc, session.target.name
    base = f"http://127.0.0.1:{proc.port}"
    out: dict = {"wrk": {}, "streams": {}}
    for workload, levels in LEVELS.items():
        route = session.usable.get(workload)
        if route is None:
            continue
        url, body = base + route.path, env.bodies / route.body
        runs = out["wrk"][workload] = {}
        for c in levels:
            if c == 32:
                runs["c32"] = _loaded_run(proc, url, body, route, env, plan)
            else:
                runs[f"c{c}"] = wrk.run(
                    url,
                    body,
                    connections=c,
                    seconds=plan.seconds(c),
                    cpus=env.cpu_loadgen,
                    headers=route.headers,
                ).as_dict()
            print(f"  {name} {workload} c{c}: {_brief(runs[f'c{c}'])}", flush=True)
    for workload in STREAMS:
        if workload in session.usable:
            timing = stream_timing(env, proc.port, session.usable[workload], plan)
            out["streams"][workload] = timing
            print(f"  {name} {workload}: {_brief_stream(timing)}", flush=True)
    return out


def finish(session: Session, rounds: list[dict]) -> dict:
    """The target's figures: per-figure medians over the rounds, plus memory and overhead."""
    out = {**session.info, **combine(rounds), "rounds": rounds}
    out["rss_after_mb"] = rss_mb(session.proc.pids())
    peaks = [
        r["rss_peak_mb"]
        for one in rounds
        for runs in one["wrk"].values()
        for r in runs.values()
        if "rss_peak_mb" in r
    ]
    out["rss_load_mb"] = max(peaks, default=None)
    if session.target.kind == "ours":
        out["overhead_metric"] = scrape_overhead(session.proc.port)
    return out


def combine(rounds: list[dict]) -> dict:
    """Median of every numeric leaf across rounds (robust to a noisy neighbour's burst)."""
    first = rounds[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in rounds)]
        return {k: combine([r[k] for r in rounds]) for k in keys}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(rounds)
    return first


def _brief(run: dict) -> str:
    errors = f", {run['errors']} errors" if run["errors"] else ""
    return f"{run['rps']:.0f} req/s, p50 {run['p50_ms']:.3f} ms, p99 {run['p99_ms']:.3f} ms{errors}"


def _brief_stream(timing: dict) -> str:
    if "error" in timing:
        return f"failed: {timing['error']}"
    ttft, total = timing.get("ttft_ms", {}), timing.get("total_ms", {})
    return f"ttft p50 {ttft.get('p50', 0):.3f} ms, total p50 {total.get('p50', 0):.3f} ms"
