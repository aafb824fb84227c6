"""Issue 6's benchmark: one command, one run, every target side by side on loopback.

    python tests/bench/run.py [--quick] [--only NAME,...] [--upstream nginx|asyncio] [--no-pin]

Targets: the direct path to a fast fake upstream, nginx ``proxy_pass`` with keepalive, THE
FLOOR (``floor.py``: a bare aiohttp+uvloop+orjson pass-through), llm-edge-agent with 1 and 2
workers, and LiteLLM's proxy (skipped by ``--quick``). Installs nginx and wrk (apt-get) and
LiteLLM (its own venv under tests/bench/.work) when missing. Prints tables, writes
``tests/bench/results.json`` and ``tests/bench/.work/results.md`` (paste into RESULTS.md).
Full run ~8-10 minutes, ``--quick`` ~1.5. Stdlib only; the servers it starts use the repo venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import bodies, install, report  # noqa: E402
from benchlib.measure import Plan, Session, finish, measure_round, prepare  # noqa: E402
from benchlib.procs import Proc, StartError, free_port, stop  # noqa: E402
from benchlib.targets import (  # noqa: E402
    Env,
    Target,
    all_targets,
    optional_targets,
    start_upstream,
    venv_python,
)

REPO = HERE.parent.parent


def _cpus(pin: bool) -> tuple[str | None, str | None, str | None]:
    """(load generator, target, upstream) cores. wrk alone on core 0; the target and the
    fake upstream (nginx, ~8 us of CPU a request) on core 1, so the direct path crosses
    cores once, as every proxied request does, and a proxy's hop to the upstream stays on
    its core. Multi-worker targets are left free on both cores."""
    if not pin or (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return None, None, None
    if os.environ.get("BENCH_CPUS"):  # "loadgen,target,upstream", e.g. "0,1,1"
        loadgen, target, upstream = os.environ["BENCH_CPUS"].split(",")
        return loadgen, target, upstream
    return "0", "1", "1"


def _version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else None


def machine() -> dict[str, object]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions(env: Env) -> dict[str, str | None]:
    probe = "import aiohttp as a, orjson as o, uvloop as u, httptools as h; "
    probe += "print(a.__version__, o.__version__, u.__version__, h.__version__)"
    libs = (_version([env.python, "-c", probe]) or "- - - -").split()
    litellm_python = str(env.litellm.parent / "python") if env.litellm else None
    return {
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "aiohttp": libs[0],
        "orjson": libs[1],
        "uvloop": libs[2],
        "httptools": libs[3],
        "litellm": install.LITELLM_VERSION if env.litellm else None,
        "litellm_python": _version([litellm_python, "--version"]) if litellm_python else None,
        "repo_commit": _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per run, no LiteLLM")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--upstream", choices=("nginx", "asyncio"), default="nginx")
    parser.add_argument("--no-pin", action="store_true", help="do not taskset anything")
    parser.add_argument("--no-install", action="store_true", help="never apt-get or pip install")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> Env:
    work = HERE / ".work" / "run"
    shutil.rmtree(work / "logs", ignore_errors=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    missing = [] if args.no_install else install.ensure_debian_tools()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk): cannot measure anything")
    if "nginx" in missing or (not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists()):
        print("nginx is missing: using the asyncio upstream, no nginx target", flush=True)
        args.upstream = "asyncio"
    want_litellm = not args.quick and (not args.only or "litellm" in args.only)
    litellm = None
    if want_litellm:
        litellm = install.ensure_litellm(HERE / ".work")
        if litellm is None and not args.no_install:
            print("LiteLLM could not be installed: no LiteLLM target", flush=True)
    bodies.write_all(work / "bodies")
    loadgen, target, upstream = _cpus(not args.no_pin)
    return Env(
        repo=REPO,
        work=work,
        upstream_port=free_port(),
        python=venv_python(REPO),
        cpu_loadgen=loadgen,
        cpu_target=target,
        cpu_upstream=upstream,
        litellm=litellm,
    )


def _start_all(chosen: list[Target], env: Env, plan: Plan, upstream: Proc) -> list[Session]:
    sessions = []
    for target in chosen:
        print(f"== {target.name}: {target.label}", flush=True)
        if target.name == "direct":
            sessions.append(prepare(target, upstream, env, plan))
            continue
        try:
            proc = target.launch(env)
        except (StartError, OSError) as exc:
            reason = str(exc).strip().replace("\n", " | ")[-600:]
            print(f"  {target.name}: SKIPPED, did not start: {reason}", flush=True)
            sessions.append(Session(target, upstream, {}, {"skipped": reason}))
            continue
        sessions.append(prepare(target, proc, env, plan))
    return sessions


def run_targets(args: argparse.Namespace, env: Env, plan: Plan) -> dict[str, dict]:
    """Start every target, then measure them in turn, ``plan.rounds`` times over, rotating
    the order each round so no target always runs first or last; medians per figure."""
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    known = all_targets(args.quick) + optional_targets()
    chosen = [t for t in known if t.name in only] if only else all_targets(args.quick)
    if only and "direct" not in only:
        chosen.insert(0, next(t for t in all_targets(True) if t.name == "direct"))
    if args.upstream != "nginx":
        chosen = [t for t in chosen if t.name != "nginx"]
    upstream = start_upstream(env, args.upstream)
    sessions: list[Session] = []
    try:
        sessions = _start_all(chosen, env, plan, upstream)
        live = [s for s in sessions if "skipped" not in s.info]
        rounds: dict[str, list[dict]] = {s.target.name: [] for s in live}
        for r in range(plan.rounds):
            print(f"== round {r + 1}/{plan.rounds}", flush=True)
            for session in live[r % len(live) :] + live[: r % len(live)]:
                rounds[session.target.name].append(measure_round(session, env, plan))
        time.sleep(1)
        return {
            s.target.name: finish(s, rounds[s.target.name]) if "skipped" not in s.info else s.info
            for s in sessions
        }
    finally:
        for session in sessions:
            if session.proc is not upstream:
                stop(session.proc)
        stop(upstream)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    env = setup(args)
    plan = Plan.quick() if args.quick else Plan()
    results = run_targets(args, env, plan)
    report.derive(results)
    ratios = report.ratios(results)
    checks = report.checks(results)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "versions": versions(env),
        "upstream": args.upstream,
        "pinning": {
            "loadgen": env.cpu_loadgen,
            "target": env.cpu_target,
            "upstream": env.cpu_upstream,
            "multi_worker_targets": None,
        },
        "plan": plan.__dict__,
        "seconds": round(time.monotonic() - started, 1),
    }
    data = {"meta": meta, "targets": results, "ratios": ratios, "checks": checks}
    args.out.write_text(json.dumps(data, indent=2))
    skipped = {n: t["skipped"] for n, t in results.items() if "skipped" in t}
    text = "\n\n".join(
        [
            report.table(results, False),
            report.ratio_table(ratios, False),
            report.check_table(checks, False),
        ]
    )
    print("\n" + text)
    for name, reason in skipped.items():
        print(f"SKIPPED {name}: {reason[:300]}")
    markdown = "\n\n".join(
        [
            report.table(results, True),
            report.ratio_table(ratios, True),
            report.check_table(checks, True),
        ]
    )
    md_path = HERE / ".work" / "results.md"
    md_path.write_text(markdown + "\n")
    print(f"\nwrote {args.out} and {md_path} in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
