"""Access to the vendor reference kit, copied into the repository at ``proxy/sim/vendor``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

KIT = Path(__file__).resolve().parents[1] / "proxy" / "sim" / "vendor"
SAMPLES = KIT / "samples"
SCHEMAS = KIT / "schemas"


def sample(rel: str) -> Any:
    return orjson.loads((SAMPLES / rel).read_bytes())


def sample_bytes(rel: str) -> bytes:
    return (SAMPLES / rel).read_bytes()


@functools.cache
def validator(rel: str) -> Draft202012Validator:
    """A compiled validator for ``schemas/<rel>``, built once per test session."""
    return Draft202012Validator(orjson.loads((SCHEMAS / rel).read_bytes()))


def assert_valid(rel: str, instance: Any) -> None:
    errors = sorted(validator(rel).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]]
