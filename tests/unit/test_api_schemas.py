"""The API schemas in ``schema/``: valid, documented, faithful to OpenAI's, and in agreement
with the hand-written hot-path check and the error taxonomy."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from proxy.errors import STATUS, ErrorType, GatewayError, too_large
from proxy.providers.openai import validate_chat_request
from tests.kit import SAMPLES, SCHEMAS, sample

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"
BASE = SCHEMA_DIR.as_uri() + "/"
UNIFIED = ("unified.request", "unified.response", "unified.chunk")
COMPLETIONS = ("/v1/chat/completions", "/v1/messages")
OPENAI_REQUESTS = (
    "chat.request.json",
    "chat.request.stream.json",
    "chat.request.tool_results.json",
)


def load(name: str) -> dict[str, Any]:
    return orjson.loads((SCHEMA_DIR / name).read_bytes())


def unified(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load(f"unified.{kind}.schema.json"))


OPENAPI = load("openapi.json")
REGISTRY: Registry = Registry().with_resources(
    (BASE + path.name, DRAFT202012.create_resource(orjson.loads(path.read_bytes())))
    for path in SCHEMA_DIR.glob("*.json")
)


def component(name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` of openapi.json, refs resolved."""
    return Draft202012Validator(
        {"$ref": f"{BASE}openapi.json#/components/schemas/{name}"}, registry=REGISTRY
    )


def errors_of(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:160]}" for e in validator.iter_errors(instance)]


# --- validity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_openapi_document_is_valid_openapi_3_1() -> None:
    assert OPENAPI["openapi"].startswith("3.1.")
    validate_openapi(OPENAPI, base_uri=f"{BASE}openapi.json")


def test_openapi_rejects_a_broken_reference() -> None:
    """The validator really follows the relative refs to the unified schemas."""
    broken = copy.deepcopy(OPENAPI)
    broken["components"]["schemas"]["ChatCompletionRequest"]["$ref"] = "missing.schema.json"
    with pytest.raises(Exception, match=r"missing\.schema\.json"):
        validate_openapi(broken, base_uri=f"{BASE}openapi.json")


def _properties(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (location, property schema) under any ``properties`` in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{where}/properties/{name}", prop
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _properties(item, f"{where}/{index}")


def _needs_description(prop: Any) -> bool:
    # Bare {"const": ...} / {"required": [...]} nodes inside if/then are conditions, not fields.
    return isinstance(prop, dict) and bool(set(prop) - {"const", "enum", "required"})


@pytest.mark.parametrize("name", [f"{k}.schema.json" for k in UNIFIED] + ["openapi.json"])
def test_every_property_has_a_description(name: str) -> None:
    undocumented = [
        where
        for where, prop in _properties(load(name), "#")
        if _needs_description(prop) and not prop.get("description")
    ]
    assert not undocumented, undocumented


def test_unified_schemas_state_provenance_and_licence() -> None:
    for kind in UNIFIED:
        description = load(f"{kind}.schema.json")["description"]
        assert "openai-openapi" in description
        assert "MIT" in description


# --- faithful to OpenAI's schemas ---------------------------------------------------------------


def _vendor_properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Properties of ``node``, through ``$ref`` and ``allOf`` (the vendor schema's layout)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    out: dict[str, Any] = {}
    for part in node.get("allOf", ()):
        out.update(_vendor_properties(schema, part))
    out.update(node.get("properties", {}))
    return out


def _ours(properties: dict[str, Any]) -> set[str]:
    return {name for name, prop in properties.items() if not prop.get("x-llm-extension")}


@pytest.mark.parametrize(
    ("kind", "vendor_file"),
    [
        ("request", "chat.completions.request.schema.json"),
        ("response", "chat.completions.response.schema.json"),
    ],
)
def test_top_level_fields_are_a_subset_of_openai(kind: str, vendor_file: str) -> None:
    vendor = orjson.loads((SCHEMAS / "openai" / vendor_file).read_bytes())
    ours = load(f"unified.{kind}.schema.json")
    assert _ours(ours["properties"]) <= set(_vendor_properties(vendor, vendor))


def test_chunk_and_usage_fields_are_a_subset_of_openai() -> None:
    vendor = orjson.loads((SCHEMAS / "openai" / "chat.completions.chunk.schema.json").read_bytes())
    defs = load("unified.chunk.schema.json")["$defs"]
    assert _ours(defs["Chunk"]["properties"]) <= set(vendor["properties"])
    vendor_usage = vendor["$defs"]["CompletionUsage"]["properties"]
    assert _ours(defs["Usage"]["properties"]) <= set(vendor_usage)
    assert {n for n, p in defs["Usage"]["properties"].items() if p.get("x-llm-extension")} == {
        "cost"
    }


def test_request_scalar_types_match_openai() -> None:
    """Where both schemas give a plain ``type``, they give the same one."""
    vendor = orjson.loads(
        (SCHEMAS / "openai" / "chat.completions.request.schema.json").read_bytes()
    )
    theirs = _vendor_properties(vendor, vendor)
    for name, prop in load("unified.request.schema.json")["properties"].items():
        if "type" in prop and "type" in theirs.get(name, {}):
            assert set(_types(prop)) == set(_types(theirs[name])), name


def _types(prop: dict[str, Any]) -> list[str]:
    kind = prop["type"]
    return [kind] if isinstance(kind, str) else list(kind)


# --- requests: schema and the hot-path check agree ---------------------------------------------


@pytest.mark.parametrize("name", OPENAI_REQUESTS)
def test_kit_openai_requests_are_accepted_by_schema_and_hot_path(name: str) -> None:
    body = sample(f"openai/{name}")
    assert not errors_of(unified("request"), body)
    validate_chat_request(body)


def test_extension_top_k_is_accepted() -> None:
    body = {"model": "claude-3-haiku", "messages": [{"role": "user", "content": "hi"}], "top_k": 5}
    assert not errors_of(unified("request"), body)
    validate_chat_request(body)


GOOD = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MALFORMED: list[tuple[str, Any, str | None]] = [
    ("not an object", ["model", "gpt-4o"], None),
    ("no model", {"messages": GOOD["messages"]}, "model"),
    ("empty model", {**GOOD, "model": ""}, "model"),
    ("model not a string", {**GOOD, "model": 4}, "model"),
    ("no messages", {"model": "gpt-4o"}, "messages"),
    ("empty messages", {**GOOD, "messages": []}, "messages"),
    ("messages not an array", {**GOOD, "messages": {"role": "user"}}, "messages"),
    ("message not an object", {**GOOD, "messages": ["hi"]}, "messages[0]"),
    ("unknown role", {**GOOD, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ("user without content", {**GOOD, "messages": [{"role": "user"}]}, "messages[0].content"),
    (
        "content a number",
        {**GOOD, "messages": [{"role": "user", "content": 7}]},
        "messages[0].content",
    ),
    (
        "untyped content part",
        {**GOOD, "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        "messages[0].content[0]",
    ),
    ("stream not a boolean", {**GOOD, "stream": "yes"}, "stream"),
    ("stream_options not an object", {**GOOD, "stream_options": True}, "stream_options"),
    ("temperature a string", {**GOOD, "temperature": "hot"}, "temperature"),
    ("temperature a boolean", {**GOOD, "temperature": True}, "temperature"),
    ("max_tokens a float", {**GOOD, "max_tokens": 1.5}, "max_tokens"),
    ("n a boolean", {**GOOD, "n": True}, "n"),
    ("seed a string", {**GOOD, "seed": "42"}, "seed"),
    ("tools not an array", {**GOOD, "tools": {"type": "function"}}, "tools"),
]


@pytest.mark.parametrize(
    ("body", "param"), [(b, p) for _, b, p in MALFORMED], ids=[c for c, _, _ in MALFORMED]
)
def test_malformed_requests_are_rejected_by_both(body: Any, param: str | None) -> None:
    assert errors_of(unified("request"), body), "the schema accepted it"
    with pytest.raises(GatewayError) as caught:
        validate_chat_request(body)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert caught.value.status == 400
    assert caught.value.param == param


# --- responses and stream events ----------------------------------------------------------------


def _with_cost(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if usage is None else {**usage, "cost": 0.0012}


def test_kit_response_with_cost_matches_and_without_cost_does_not() -> None:
    reply = sample("openai/chat.response.tool_calls.json")
    assert errors_of(unified("response"), reply) == ["['usage']: 'cost' is a required property"]
    reply["usage"] = _with_cost(reply["usage"])
    assert not errors_of(unified("response"), reply)


@pytest.mark.parametrize("name", sorted(p.name for p in (SAMPLES / "openai").glob("chat.*.sse")))
def test_kit_stream_events_match_the_chunk_schema_once_costed(name: str) -> None:
    events = 0
    for line in (SAMPLES / "openai" / name).read_bytes().splitlines():
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if "usage" in event:
            event["usage"] = _with_cost(event["usage"])
        assert not errors_of(unified("chunk"), event), event
        events += 1
    assert events


def test_chunk_schema_requires_cost_on_the_usage_chunk() -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    assert errors_of(unified("chunk"), chunk)
    chunk["usage"]["cost"] = 0.0
    assert not errors_of(unified("chunk"), chunk)


# --- the error taxonomy as documented -----------------------------------------------------------


def _error(kind: ErrorType) -> GatewayError:
    return GatewayError(
        kind, f"{kind} happened", param="model" if kind == "invalid_request" else None
    )


ALL_ERRORS = [_error(kind) for kind in ErrorType] + [
    too_large(1024),
    GatewayError(ErrorType.PROVIDER_ERROR, "overloaded", overloaded=True),
    GatewayError(ErrorType.RATE_LIMIT_EXCEEDED, "slow down", retry_after="2"),
]


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: f"{e.type}-{e.status}")
def test_every_error_renders_to_the_documented_bodies(error: GatewayError) -> None:
    assert not errors_of(component("OpenAIError"), error.openai_body())
    assert not errors_of(component("AnthropicError"), error.anthropic_body())
    chunk_errors = errors_of(unified("chunk"), error.openai_body())
    assert not chunk_errors, "a mid-stream error must match the chunk schema too"


def _responses(path: str) -> dict[str, Any]:
    return OPENAPI["paths"][path]["post"]["responses"]


@pytest.mark.parametrize("path", COMPLETIONS)
def test_every_taxonomy_status_is_documented_on_both_completion_endpoints(path: str) -> None:
    documented = {int(status) for status in _responses(path)}
    assert {STATUS[kind] for kind in ErrorType} | {200, 413} <= documented


def test_x_llm_error_enumerates_exactly_the_taxonomy() -> None:
    enum = OPENAPI["components"]["headers"]["Error"]["schema"]["enum"]
    assert sorted(enum) == sorted(str(kind) for kind in ErrorType)
    openai_types = OPENAPI["components"]["schemas"]["OpenAIError"]["properties"]["error"]
    assert sorted(openai_types["properties"]["type"]["enum"]) == sorted(enum)


def test_anthropic_error_types_cover_every_rendering() -> None:
    enum = set(
        OPENAPI["components"]["schemas"]["AnthropicErrorDetail"]["properties"]["type"]["enum"]
    )
    assert {e.anthropic_type() for e in ALL_ERRORS} <= enum
