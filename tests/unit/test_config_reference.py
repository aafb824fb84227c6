"""The config reference in the README is generated from the schema, and the schema is sound."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from proxy.config import snapshot as snap
from proxy.config.reference import END, START, render_reference, splice
from proxy.config.validate import schema

REPO = Path(__file__).resolve().parents[2]


def test_readme_block_equals_the_generated_reference() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block == "\n" + render_reference(), (
        "README's config reference is stale: run "
        "`python -m proxy.config.reference --write README.md`"
    )


def test_module_prints_the_reference() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy.config.reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == render_reference()


def test_splice_replaces_only_the_marked_block() -> None:
    doc = f"intro\n{START}\nold\n{END}\noutro\n"
    assert splice(doc, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(schema())


def _objects(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")


def test_every_object_is_closed_and_every_property_described() -> None:
    for where, node in _objects(schema()):
        assert node.get("additionalProperties") is False, where
        for key, prop in node["properties"].items():
            assert prop.get("description"), f"{where}/{key}"


SECTIONS = {
    "retry": snap.RetryPolicy,
    "timeouts": snap.Timeouts,
    "pool": snap.PoolSettings,
    "breaker": snap.BreakerSettings,
    "health_check": snap.HealthCheckSettings,
    "logging": snap.LoggingSettings,
}


def test_schema_defaults_match_the_snapshot_dataclasses() -> None:
    """The reference documents these defaults; the engine uses the dataclasses' own."""
    defs = schema()["$defs"]
    for name, cls in SECTIONS.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        properties = defs[name]["properties"]
        assert set(properties) == set(fields), name
        for key, prop in properties.items():
            assert prop["default"] == fields[key], f"{name}.{key}"
    server = defs["server"]["properties"]
    assert server["max_body_bytes"]["default"] == snap.ServerSettings().max_body_bytes
    assert server["drain_timeout_s"]["default"] == snap.ServerSettings().drain_timeout_s
    auth = defs["auth"]["properties"]
    assert auth["protect_ops_endpoints"]["default"] == snap.AuthSettings().protect_ops_endpoints
    for section, cls in (("model", snap.ModelConfig), ("provider", snap.ProviderConfig)):
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        for key in ("max_tokens", "anthropic_version", "api_key", "drop_unsupported_params"):
            prop = defs[section]["properties"].get(key, {})
            if "default" in prop:
                assert prop["default"] == fields[key], f"{section}.{key}"
