"""Offline checks of ``deploy/``: no Docker engine, no cluster, no network.

The Kubernetes manifests are built the way ``kustomize build deploy/k8s`` builds them (a small
emulation of exactly the kustomization fields we use; a test fails if another field appears)
and validated against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``, in
strict mode (unknown fields are errors), at the oldest version we support and the newest the
package ships. The Dockerfile is read with a small line parser, and everything the manifests
promise each other (ports, paths, probe targets, grace periods) is cross-checked.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SIDECAR = "llm-edge-agent"
DEFAULT_PORT = 8787
DEFAULT_DRAIN_S = 30.0
# deploy/README.md: native sidecars (1.29) and the preStop `sleep` action (beta, on, 1.30).
MIN_K8S = "1.30.0"
# The kustomization fields the emulation below implements; any other one fails the build.
KUSTOMIZE_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "generatorOptions",
    "images",
}


# ---- kustomize, emulated for the fields deploy/k8s uses -------------------------------------


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def generated_configmaps(kust: dict[str, Any]) -> list[dict[str, Any]]:
    """ConfigMaps as kustomize's configMapGenerator makes them (``files:``, ``key=path`` too)."""
    assert kust.get("generatorOptions", {}).get("disableNameSuffixHash") is True
    maps = []
    for generator in kust.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}, f"not emulated: {sorted(generator)}"
        data = {}
        for entry in generator["files"]:
            key, _, rel = entry.rpartition("=")
            path = K8S / rel
            assert path.resolve().is_relative_to(K8S), f"{rel}: kustomize loads only below its root"
            data[key or path.name] = path.read_text()
        metadata = {"name": generator["name"]}
        maps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return maps


def set_images(resource: dict[str, Any], images: list[dict[str, str]]) -> None:
    """The ``images:`` transformer on every container of a pod template."""
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name = container["image"].split(":")[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


@cache
def _build() -> tuple[dict[str, Any], ...]:
    kust = kustomization()
    assert set(kust) <= KUSTOMIZE_FIELDS, f"emulate these first: {set(kust) - KUSTOMIZE_FIELDS}"
    resources = []
    for rel in kust["resources"]:
        resources += [doc for doc in yaml.safe_load_all((K8S / rel).read_text()) if doc]
    for resource in resources:
        set_images(resource, kust.get("images", []))
    return (*resources, *generated_configmaps(kust))


def built() -> list[dict[str, Any]]:
    """What ``kustomize build deploy/k8s`` prints, as fresh copies a test may mutate."""
    return copy.deepcopy(list(_build()))


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [r for r in built() if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod_spec() -> dict[str, Any]:
    return find("Deployment")["spec"]["template"]["spec"]


def sidecar() -> dict[str, Any]:
    (container,) = [c for c in pod_spec().get("initContainers", []) if c["name"] == SIDECAR]
    return container


def option(args: list[str], flag: str, default: str | None = None) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def sidecar_config() -> dict[str, Any]:
    return yaml.safe_load((K8S / "config" / "config.yaml").read_text())


def drain_timeout_s() -> float:
    return float(sidecar_config().get("server", {}).get("drain_timeout_s", DEFAULT_DRAIN_S))


# ---- Kubernetes schemas ---------------------------------------------------------------------


def k8s_versions() -> list[str]:
    newest = kv.latest_version()
    assert Version(newest) >= Version(MIN_K8S), f"kubernetes-validate too old ({newest})"
    return [MIN_K8S, newest]


def label(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def manifests() -> list[dict[str, Any]]:
    """Everything ``apply -k`` sends, plus the Secret example ops copy."""
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    return [*built(), secret]


@pytest.mark.parametrize("version", k8s_versions())
@pytest.mark.parametrize("resource", manifests(), ids=label)
def test_manifest_validates_against_kubernetes_schema(resource: dict, version: str) -> None:
    try:
        kv.validate(resource, version, strict=True)
    except kv.ValidationError as error:
        where = ".".join(str(p) for p in error.path)
        pytest.fail(f"{label(resource)}, Kubernetes {version}, at {where}: {error.message}")


def test_schema_check_is_strict_enough_to_catch_a_typo() -> None:
    deployment = find("Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][0]["livenesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, MIN_K8S, strict=True)


def test_every_configmap_the_pod_mounts_is_generated() -> None:
    generated = {r["metadata"]["name"] for r in built() if r["kind"] == "ConfigMap"}
    mounted = {v["configMap"]["name"] for v in pod_spec()["volumes"] if "configMap" in v}
    assert mounted == generated


def test_secret_example_is_never_applied_and_holds_only_placeholders() -> None:
    assert "secret.example.yaml" not in kustomization()["resources"]
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert "data" not in secret, "placeholders belong in stringData, readable as placeholders"
    assert all(value.startswith("replace-me") for value in secret["stringData"].values())
    referenced = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for container in pod_spec()["containers"] + pod_spec()["initContainers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert referenced == set(secret["stringData"])


# ---- the sidecar in the pod -----------------------------------------------------------------


def test_sidecar_is_a_native_sidecar_that_starts_before_the_app() -> None:
    container = sidecar()
    assert container["restartPolicy"] == "Always"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][0] == "serve"


def test_config_configmap_is_mounted_as_the_directory_config_points_into() -> None:
    config = PurePosixPath(option(sidecar()["args"], "--config"))
    (mount,) = [m for m in sidecar()["volumeMounts"] if m["mountPath"] == str(config.parent)]
    assert "subPath" not in mount and "subPathExpr" not in mount, "subPath never sees updates"
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == mount["name"]]
    assert "items" not in volume["configMap"]
    configmap = find("ConfigMap", volume["configMap"]["name"])
    assert config.name in configmap["data"]


def test_generated_config_is_a_valid_sidecar_config(tmp_path: Path) -> None:
    configmap = find("ConfigMap", "llm-edge-agent-config")
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    data = yaml.safe_load(path.read_text())
    schema = json.loads((REPO / "schema" / "config.schema.json").read_text())
    validator = Draft202012Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors
    assert {m["provider"] for m in data["models"].values()} <= set(data["providers"])
    assert "LLM_EDGE_TOKEN" in data["server"]["auth"]["tokens_env"]
    if not (REPO / "proxy" / "cli.py").is_file():
        pytest.skip("proxy.cli not built yet: checked the YAML only")
    env = {"PATH": "", "LLM_EDGE_TOKEN": "test-token-not-a-secret"}
    check = subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_probes_hit_the_health_endpoints_on_the_served_port() -> None:
    container = sidecar()
    port = int(option(container["args"], "--port", str(DEFAULT_PORT)))
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named.values()
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
    for probe, path in expected.items():
        target = container[probe]["httpGet"]
        assert target["path"] == path, probe
        assert named.get(target["port"], target["port"]) == port, probe


def test_prometheus_annotations_point_at_the_metrics_endpoint() -> None:
    annotations = find("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == option(sidecar()["args"], "--port", "8787")
    assert option(sidecar()["args"], "--host") == "0.0.0.0", "Prometheus scrapes the pod IP"


def test_grace_period_covers_prestop_and_drain() -> None:
    spec = pod_spec()
    sleeps = [
        c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        for c in spec["containers"] + spec["initContainers"]
    ]
    assert max(sleeps) > 0, "the app needs a preStop pause for endpoint removal"
    assert spec["terminationGracePeriodSeconds"] > max(sleeps) + drain_timeout_s()


def test_keys_come_from_the_secret_and_token_auth_guards_the_pod_ip() -> None:
    env = {e["name"]: e for e in sidecar()["env"]}
    tokens = sidecar_config()["server"]["auth"]["tokens_env"]
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", *tokens):
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name
    assert env["LLM_EDGE_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional") is not True
    assert sidecar_config()["server"]["auth"].get("protect_ops_endpoints") is not True, (
        "the kubelet's probes and Prometheus carry no token"
    )


def test_containers_are_locked_down_and_sized() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"] + spec["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
    assert sidecar()["image"] == "llm-edge-agent:0.1.0"


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


def test_dockerfile_entrypoint_is_the_installed_console_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    (entrypoint,) = final_stage("ENTRYPOINT")
    assert entrypoint.exec_form() == [SIDECAR]
    assert SIDECAR in scripts
    (cmd,) = final_stage("CMD")
    assert cmd.exec_form()[0] == "serve"


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
    assert "[test]" not in runs and "apt-get" not in runs
    assert len({i.stage for i in dockerfile()}) >= 2, "multi-stage: build wheels, then install"
    (cmd,) = final_stage("CMD")
    config = option(cmd.exec_form(), "--config")
    assert config == option(sidecar()["args"], "--config"), "one config path everywhere"
    defaults = [i for i in final_stage("COPY") if i.args.split()[-1] == config]
    assert defaults, "the image carries a default config where --config points"


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


def test_example_app_compiles() -> None:
    source = K8S / "example-app" / "app.py"
    compile(source.read_text(), str(source), "exec")
