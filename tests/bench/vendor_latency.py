"""Added latency per upstream vendor, side by side in one run (issue 13).

    .venv/bin/python tests/bench/vendor_latency.py [--requests 300]

Starts the simulator (``python -m proxy.sim``, schema validation off) and the gateway
(``python -m proxy serve``, the shipped config pointed at the simulator) as processes, then
sends the same OpenAI-format request to the gateway for an OpenAI model (pass-through), a
Claude model and a Gemini model (both translated), and the equivalent native request straight
to the simulator, interleaving all six kinds request by request over keep-alive connections.
The added latency of a vendor is the gateway's median minus the direct median for that
vendor's wire (the simulator's own time cancels out). Non-streaming and streaming (whole body).
Stdlib + the repo only; loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from proxy.demo import demo_config, shipped_models  # noqa: E402
from proxy.sim.runner import free_port  # noqa: E402

KEYS = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-ant-bench", "GEMINI_API_KEY": "g"}
SYSTEM = "You are a concise travel assistant. Answer briefly."
USER = (
    "I am visiting Paris tomorrow morning for a meeting near the river. Should I take an "
    "umbrella, and what should I wear?"
)
VENDORS = {
    # name: (gateway model, direct path, direct body, direct headers)
    "openai": (
        "gpt-4o",
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "max_tokens": 256,
        },
        {"authorization": "Bearer sk-bench"},
    ),
    "anthropic": (
        "claude-3.5-sonnet",
        "/v1/messages",
        {
            "model": "claude-3-5-sonnet-20241022",
            "system": SYSTEM,
            "messages": [{"role": "user", "content": USER}],
            "max_tokens": 256,
        },
        {"x-api-key": "sk-ant-bench", "anthropic-version": "2023-06-01"},
    ),
    "gemini": (
        "gemini-2.5-flash",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "contents": [{"role": "user", "parts": [{"text": USER}]}],
            "generationConfig": {"maxOutputTokens": 256},
        },
        {"x-goog-api-key": "g"},
    ),
}


COLUMNS = ("direct_p50_ms", "gateway_p50_ms", "added_p50_ms", "direct_p90_ms", "gateway_p90_ms")


def _start_sim() -> tuple[subprocess.Popen[bytes], str]:
    models = [arg for model in sorted(shipped_models()) for arg in ("--model", model)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.sim", "--port", "0", "--no-validate", *models],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    return proc, line.rsplit(" ", 1)[-1].strip()


def _start_gateway(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--no-watch",
        ],
        env={**os.environ, **KEYS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not start")


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> float:
    started = time.perf_counter()
    conn.request("POST", path, body, {"content-type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {data[:300]!r}")
    return elapsed * 1000


def _kinds(stream: bool) -> list[tuple[str, str, str, bytes, dict]]:
    """(label, target 'sim'|'gw', path, body, headers) for each vendor, both ways."""
    kinds = []
    for vendor, (model, path, direct, headers) in VENDORS.items():
        native = dict(direct)
        if stream:
            if vendor == "gemini":
                path = path.replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
            else:
                native["stream"] = True
        if stream and vendor == "openai":
            native["stream_options"] = {"include_usage": True}
        body = {"model": model, "messages": VENDORS["openai"][2]["messages"], "max_tokens": 256}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        kinds.append((vendor, "sim", path, json.dumps(native).encode(), headers))
        kinds.append((vendor, "gw", "/v1/chat/completions", json.dumps(body).encode(), {}))
    return kinds


def run(requests: int, stream: bool, sim_url: str, gw_url: str) -> dict[str, Any]:
    conns = {
        "sim": http.client.HTTPConnection(*sim_url[7:].split(":"), timeout=30),
        "gw": http.client.HTTPConnection(*gw_url[7:].split(":"), timeout=30),
    }
    kinds = _kinds(stream)
    times: dict[tuple[str, str], list[float]] = {(v, t): [] for v, t, *_ in kinds}
    for _ in range(20):  # warm-up: connections, imports, caches
        for _vendor, target, path, body, headers in kinds:
            _post(conns[target], path, body, headers)
    for _ in range(requests):
        for vendor, target, path, body, headers in kinds:
            times[(vendor, target)].append(_post(conns[target], path, body, headers))
    out = {}
    for vendor in VENDORS:
        direct, through = times[(vendor, "sim")], times[(vendor, "gw")]
        out[vendor] = {
            "direct_p50_ms": statistics.median(direct),
            "gateway_p50_ms": statistics.median(through),
            "added_p50_ms": statistics.median(through) - statistics.median(direct),
            "direct_p90_ms": statistics.quantiles(direct, n=10)[-1],
            "gateway_p90_ms": statistics.quantiles(through, n=10)[-1],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="per kind and mode")
    args = parser.parse_args(argv)
    sim, sim_url = _start_sim()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gateway, gw_url = _start_gateway(demo_config(sim_url, Path(tmp)))
            try:
                for stream in (False, True):
                    results = run(args.requests, stream, sim_url, gw_url)
                    print(f"\n{'stream' if stream else 'non-stream'} ({args.requests} each)")
                    print(f"{'upstream':<10} {'direct p50':>11} {'via gw p50':>11} "
                          f"{'added p50':>11} {'direct p90':>11} {'via gw p90':>11}")  # fmt: skip
                    for vendor, r in results.items():
                        print(f"{vendor:<10}", *(f"{r[k]:>11.3f}" for k in COLUMNS))
            finally:
                gateway.terminate()
                gateway.wait(10)
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
