"""CPU per request of the upstream client without a proxy: this tree vs. a baseline revision.

    .venv/bin/python tests/bench/egress_cost.py --baseline <rev> [--requests 20000]

Issue 11 taught the pool forward proxies and per-provider TLS; a gateway without a proxy must
not pay for it. This loads ``proxy/engine/connections.py`` as it is at ``--baseline`` (via
``git show``) beside the current one, sends the same small chat request to the nginx fake
upstream with each pool (no proxy), one at a time and 32 at once, alternating them (ABBA
order) four times, and prints the process's CPU time per request and the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import uvloop  # noqa: E402
from benchlib.procs import free_port, stop  # noqa: E402
from benchlib.targets import Env, start_upstream, venv_python  # noqa: E402
from client_cost import BODY, HEADERS, per_request_us  # noqa: E402

from proxy.config.snapshot import PoolSettings  # noqa: E402
from proxy.engine import connections as current  # noqa: E402

ROUNDS = 2  # pairs of rounds


def baseline_module(rev: str) -> ModuleType:
    """``proxy/engine/connections.py`` at ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:proxy/engine/connections.py"],
        check=True,
        capture_output=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="lea-egress-")) / "baseline_connections.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("baseline_connections", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure(origin: str, total: int, baseline: ModuleType) -> None:
    url = f"{origin}/v1/chat/completions"
    settings = PoolSettings(max_idle_per_host=64)
    pools = {
        "baseline": baseline.UpstreamPool(origin, settings, 1000),
        "this tree": current.UpstreamPool(origin, settings, 1000),
    }

    def sender(pool: object):  # type: ignore[no-untyped-def]
        async def send() -> None:
            response = await pool.request("POST", url, HEADERS, BODY, 5.0, whole=True)  # type: ignore[attr-defined]
            assert response.status == 200

        return send

    print("concurrency  pool (no proxy)   CPU us/request")
    for concurrency in (1, 32):
        sums = dict.fromkeys(pools, 0.0)
        for round_ in range(ROUNDS * 2):  # ABBA...: neither pool always goes first
            order = list(pools.items())
            for name, pool in order if round_ % 2 == 0 else order[::-1]:
                cost = await per_request_us(sender(pool), total, concurrency)
                sums[name] += cost
                print(f"{concurrency:>11}  {name:<16} {cost:>8.1f}")
        ratio = sums["this tree"] / sums["baseline"]
        print(f"{concurrency:>11}  this tree / baseline: {ratio:.3f}")
    for pool in pools.values():
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision before the change")
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    two = (os.cpu_count() or 1) >= 2
    env = Env(
        repo=REPO, work=HERE / ".work" / "egress-cost", upstream_port=free_port(),
        python=venv_python(REPO), cpu_loadgen=None, cpu_target=None,
        cpu_upstream="0" if two else None,
    )  # fmt: skip
    if two:
        os.sched_setaffinity(0, {1})
    baseline = baseline_module(args.baseline)
    upstream = start_upstream(env)
    try:
        uvloop.run(measure(f"http://127.0.0.1:{env.upstream_port}", args.requests, baseline))
    finally:
        stop(upstream)


if __name__ == "__main__":
    main()
