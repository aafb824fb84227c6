"""Offline checks of ``deploy/k8s``: no cluster, no network beyond loopback.

The manifests are built the way ``kustomize build deploy/k8s`` builds them (a small emulation
of exactly the kustomization fields we use; a test fails if another field appears) and
validated against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``, in strict
mode (unknown fields are errors), at the oldest version we support and the newest the package
ships. What the pod promises itself (ports, paths, probe targets, grace period against the
drain timeout) is cross-checked, and the sidecar is run for real with the pod's args and
config. The Dockerfile and compose file are checked in ``test_deploy_image.py``.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv
from packaging.version import Version

from tests.cli_args import option

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


def with_option(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``--flag``'s value replaced (appended when absent)."""
    if flag not in args:
        return [*args, flag, value]
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]


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


# ---- the real server on the deploy config, on loopback -------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until_ready(process: subprocess.Popen[bytes], url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before it was ready"
        try:
            if http_status(url) == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} not ready within {deadline_s} s")


def test_the_pod_config_serves_probes_metrics_and_token_auth(tmp_path: Path) -> None:
    """The sidecar's own args and config, run for real (on loopback, no vendor keys)."""
    if not (REPO / "proxy" / "cli.py").is_file():
        pytest.skip("proxy.cli not built yet")
    port, token = free_port(), "deploy-test-token"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    args = with_option(sidecar()["args"], "--host", "127.0.0.1")
    args = with_option(args, "--port", str(port))
    args = with_option(args, "--config", str(K8S / "config" / "config.yaml"))
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "proxy", *args], cwd=REPO, env={**env, "LLM_EDGE_TOKEN": token},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(server, base + "/readyz", deadline_s=20)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert http_status(base + sidecar()[probe]["httpGet"]["path"]) == 200, probe
        metrics = find("Deployment")["spec"]["template"]["metadata"]["annotations"]
        assert http_status(base + metrics["prometheus.io/path"]) == 200, "scraped without token"
        # An unknown model is answered without any upstream call: 404 proves auth let it in.
        chat = base + "/v1/chat/completions"
        body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
        assert http_status(chat, body=body) == 401
        assert http_status(chat, token="wrong-token", body=body) == 401
        assert http_status(chat, token=token, body=body) == 404
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=drain_timeout_s()) == 0
    except (AssertionError, pytest.fail.Exception):
        log.flush()
        print((tmp_path / "server.log").read_text()[-4000:])
        raise
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
