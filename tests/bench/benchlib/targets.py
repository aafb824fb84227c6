"""The benchmark's targets: how each one starts and which path and body each workload uses.

Workloads (keys of ``Target.routes``):
  small            OpenAI chat, ~300 B request, ~1 KB response, OpenAI upstream
  small_anthropic  ours: OpenAI chat to a Claude model (translated both ways);
                   direct/nginx/floor: a native Anthropic Messages call (the baseline)
  large            OpenAI chat with a 200 KB base64 image in an ``image_url`` part
  stream           OpenAI chat, ``stream: true``, 50 chunks, OpenAI upstream
  stream_anthropic ours: OpenAI stream from a Claude model; others: native Anthropic stream
LiteLLM speaks one format here (OpenAI), so it has no ``*_anthropic`` workloads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import nginx
from benchlib.procs import Proc, free_port, start

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@dataclass(frozen=True)
class Route:
    path: str
    body: str  # file name under the bodies directory
    headers: dict[str, str] = field(default_factory=dict)


NATIVE = {
    "small": Route("/v1/chat/completions", "small_openai.json"),
    "small_anthropic": Route("/v1/messages", "small_anthropic.json", ANTHROPIC_HEADERS),
    "large": Route("/v1/chat/completions", "large_openai.json"),
    "stream": Route("/stream/v1/chat/completions", "stream_openai.json"),
    "stream_anthropic": Route("/stream/v1/messages", "stream_anthropic.json", ANTHROPIC_HEADERS),
}
GATEWAY = {
    "small": Route("/v1/chat/completions", "small_openai.json"),
    "small_anthropic": Route("/v1/chat/completions", "small_claude.json"),
    "large": Route("/v1/chat/completions", "large_openai.json"),
    "stream": Route("/v1/chat/completions", "stream_openai.json"),
    "stream_anthropic": Route("/v1/chat/completions", "stream_claude.json"),
}
LITELLM = {k: GATEWAY[k] for k in ("small", "large", "stream")}


@dataclass
class Env:
    """Where things are and which cores each party gets (None = not pinned)."""

    repo: Path
    work: Path
    upstream_port: int
    python: str  # the repo venv's interpreter: aiohttp, uvloop, orjson
    cpu_loadgen: str | None
    cpu_target: str | None
    cpu_upstream: str | None
    litellm: Path | None = None

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def bodies(self) -> Path:
        return self.work / "bodies"


@dataclass
class Target:
    name: str
    label: str
    routes: dict[str, Route]
    launch: Callable[[Env], Proc]
    kind: str = "other"  # "ours", "floor", "nginx", "litellm", "direct"


def start_upstream(env: Env, kind: str = "nginx") -> Proc:
    """The fake vendor upstream on ``env.upstream_port``: nginx (default) or raw asyncio."""
    port = env.upstream_port
    if kind == "nginx":
        conf = nginx.write_upstream_conf(env.work, port)
        cmd = nginx.command(conf, env.work)
    else:
        cmd = [
            env.python,
            str(Path(__file__).parent.parent / "fake_upstream.py"),
            "--port",
            str(port),
        ]
    return start(f"upstream-{kind}", cmd, port=port, log_dir=env.logs, cpus=env.cpu_upstream)


def _nginx_proxy(env: Env) -> Proc:
    port = free_port()
    conf = nginx.write_proxy_conf(env.work, port, env.upstream_port)
    cmd = nginx.command(conf, env.work)
    return start("nginx-proxy", cmd, port=port, log_dir=env.logs, cpus=env.cpu_target)


def _floor(env: Env) -> Proc:
    port = free_port()
    script = str(Path(__file__).parent.parent / "floor.py")
    cmd = [
        env.python,
        script,
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{env.upstream_port}",
    ]
    return start("floor", cmd, port=port, log_dir=env.logs, cpus=env.cpu_target)


def render_template(name: str, dest: Path, **values: object) -> Path:
    text = (nginx.TEMPLATES / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    dest.write_text(text)
    return dest


def gateway_config(
    dest: Path, upstream_port: int, max_connections: int = 100, access_log: bool = True
) -> Path:
    """The benchmark's gateway config; 100 upstream connections is the product default."""
    render_template(
        "gateway.yaml.tmpl", dest, UPSTREAM_PORT=upstream_port, MAX_CONNECTIONS=max_connections
    )
    if not access_log:
        with dest.open("a") as out:
            out.write("server:   {logging: {access_log: false}}\n")
    return dest


def gateway_command(python: str, config: Path, port: int, workers: int) -> list[str]:
    """``llm-edge-agent serve`` from the repo venv (console script, else ``-m proxy``)."""
    script = Path(python).parent / "llm-edge-agent"
    head = [str(script)] if script.exists() else [python, "-m", "proxy"]
    cmd = [*head, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    return cmd + (["--workers", str(workers)] if workers > 1 else [])


def _gateway(workers: int, access_log: bool = True) -> Callable[[Env], Proc]:
    name = f"ours-{workers}w" + ("" if access_log else "-nolog")

    def launch(env: Env) -> Proc:
        port = free_port()
        config = gateway_config(env.work / f"{name}.yaml", env.upstream_port, access_log=access_log)
        cpus = env.cpu_target if workers == 1 else None
        return start(
            name,
            gateway_command(env.python, config, port, workers),
            port=port,
            log_dir=env.logs,
            cpus=cpus,
            ready_path="/readyz",
            timeout_s=30,
            env={"PYTHONPATH": str(env.repo)},
        )

    return launch


def _litellm(env: Env) -> Proc:
    if env.litellm is None:
        raise FileNotFoundError("LiteLLM is not installed")
    port = free_port()
    config = render_template(
        "litellm.yaml.tmpl", env.work / "litellm.yaml", UPSTREAM_PORT=env.upstream_port
    )
    cmd = [str(env.litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    quiet = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        # No auth on either side (our gateway's bench config has none): loopback only.
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "PYTHONPATH": "",
    }
    return start(
        "litellm",
        cmd,
        port=port,
        log_dir=env.logs,
        cpus=env.cpu_target,
        ready_path="/health/liveliness",
        timeout_s=180,
        env=quiet,
    )


def _direct(env: Env) -> Proc:
    raise RuntimeError("the direct target is the upstream itself; run.py passes it in")


def all_targets(quick: bool) -> list[Target]:
    targets = [
        Target("direct", "direct to the fake upstream", NATIVE, _direct, "direct"),
        Target("nginx", "nginx proxy_pass, keepalive", NATIVE, _nginx_proxy, "nginx"),
        Target("floor", "bare aiohttp pass-through", NATIVE, _floor, "floor"),
        Target("ours-1w", "llm-edge-agent, 1 worker", GATEWAY, _gateway(1), "ours"),
        Target("ours-2w", "llm-edge-agent, 2 workers", GATEWAY, _gateway(2), "ours"),
    ]
    if not quick:
        targets.append(Target("litellm", "LiteLLM proxy, 1 worker", LITELLM, _litellm, "litellm"))
    return targets


def optional_targets() -> list[Target]:
    """Diagnostic targets, measured only when named in ``--only``."""
    label = "llm-edge-agent, 1 worker, access log off"
    return [Target("ours-1w-nolog", label, GATEWAY, _gateway(1, access_log=False), "ours")]


def venv_python(repo: Path) -> str:
    candidate = repo / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else os.environ.get("BENCH_PYTHON", sys.executable)
