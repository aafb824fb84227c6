"""Run Debian's ``wrk`` with ``lua/post.lua`` and parse the JSON line its ``done`` hook prints.

wrk (one thread, pinned to the load-generator core) keeps its connections open and measures
each request's latency with microsecond resolution; no coordinated-omission correction, so
concurrency 1 and 8 latencies are closed-loop figures, as in the issue's reference points.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from benchlib.procs import pinned

LUA = Path(__file__).resolve().parent.parent / "lua" / "post.lua"
_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def available() -> bool:
    return shutil.which("wrk") is not None


def parse(stdout: str) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line: {stdout[-400:]}")
    data = json.loads(line[len(_MARK) :])
    seconds = data["duration_us"] / 1e6
    lat = data["latency_us"]
    return WrkResult(
        requests=data["requests"],
        seconds=seconds,
        errors=sum(data["errors"].values()),
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=lat["mean"] / 1000,
        max_ms=lat["max"] / 1000,
    )


def run(
    url: str,
    body: Path,
    *,
    connections: int,
    seconds: float,
    cpus: str | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """``connections`` concurrent keep-alive connections for ``seconds``, one wrk thread."""
    env = {
        **os.environ,
        "BENCH_BODY": str(body),
        "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in (headers or {}).items()),
    }
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(seconds, 1):.0f}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(
        pinned(cmd, cpus), env=env, capture_output=True, text=True, timeout=seconds + 60
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-400:]}")
    return parse(out.stdout)
