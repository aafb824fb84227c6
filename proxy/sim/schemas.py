"""What the fake vendors validate requests against: the vendor kit's request schemas.

Each fake checks every body it receives (``SimConfig.validate``), so a test fails when the
gateway sends a vendor anything its real API would refuse. Schemas extracted from OpenAI's
OpenAPI document need two repairs before a 2020-12 validator can use them (``openapi_schema``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from proxy.sim import openai_responses
from proxy.sim.faults import kit_dir

SCHEMAS = {
    "openai": "schemas/openai/chat.completions.request.schema.json",
    "anthropic": "schemas/anthropic/messages.request.schema.json",
    openai_responses.SCHEMA: "schemas/openai/responses.request.schema.json",
    "azure": "schemas/openai/chat.completions.request.schema.json",
    "compat": "schemas/openai/chat.completions.request.schema.json",
    "cohere": "schemas/cohere/chat.v2.request.schema.json",
    "gemini": "schemas/gemini/generateContent.request.schema.json",
    "vertex": "schemas/gemini/generateContent.request.schema.json",
}

MAX_SCHEMA_ERRORS = 5


def request_validator(vendor: str) -> Draft202012Validator:
    """The vendor's request schema from the kit, compiled once per process."""
    return _compile(kit_dir() / SCHEMAS[vendor])


@cache
def _compile(path: Path) -> Draft202012Validator:
    if not path.is_file():
        raise FileNotFoundError(f"vendor kit schema not found: {path} (set SIM_VENDOR_KIT)")
    schema = orjson.loads(path.read_bytes())
    if path.name.startswith("responses."):
        schema = openapi_schema(schema)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema extracted from OpenAI's OpenAPI document, made valid and usable: its
    overlapping ``oneOf``s read as ``anyOf`` (the kit's README), and its draft 2019-09
    recursion (``$recursiveAnchor: true`` + ``$recursiveRef: "#"``, invalid under 2020-12) as a
    plain ``$ref`` to the definition that declared the anchor."""
    defs = {
        name: _recursive(definition, f"#/$defs/{name}")
        if isinstance(definition, dict) and definition.get("$recursiveAnchor")
        else definition
        for name, definition in schema.get("$defs", {}).items()
    }
    return any_of({**schema, "$defs": defs})


def _recursive(schema: Any, ref: str) -> Any:
    if isinstance(schema, dict):
        return {
            ("$ref" if k == "$recursiveRef" else k): (
                ref if k == "$recursiveRef" else _recursive(v, ref)
            )
            for k, v in schema.items()
            if k != "$recursiveAnchor"
        }
    if isinstance(schema, list):
        return [_recursive(v, ref) for v in schema]
    return schema


def any_of(schema: Any) -> Any:
    """``schema`` with every ``oneOf`` read as ``anyOf``."""
    if isinstance(schema, dict):
        return {("anyOf" if k == "oneOf" else k): any_of(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [any_of(v) for v in schema]
    return schema


def schema_errors(vendor: str, data: Any) -> tuple[str, ...]:
    errors = sorted(request_validator(vendor).iter_errors(data), key=lambda e: list(e.path))
    return tuple(
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
        for e in errors[:MAX_SCHEMA_ERRORS]
    )
