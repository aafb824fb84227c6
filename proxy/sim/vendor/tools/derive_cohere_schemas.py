"""Derive JSON Schemas of Cohere's v2 chat from Cohere's published OpenAPI description.

    git -C cohere-developer-experience show <commit>:cohere-openapi.yaml > /tmp/cohere.yaml
    python3 proxy/sim/vendor/tools/derive_cohere_schemas.py /tmp/cohere.yaml \\
        proxy/sim/vendor/schemas/cohere <commit>

``cohere-openapi.yaml`` (github.com/cohere-ai/cohere-developer-experience) is marked
"proprietary", so nothing of its text is copied: this keeps only the structural facts of the
``POST /v2/chat`` operation (types, enums, required fields, numeric ranges) and leaves out every
description, example, title, default and vendor extension. It also turns the OpenAPI-only
constructs into plain JSON Schema 2020-12:

- ``oneOf`` + ``discriminator`` becomes a dispatch on the discriminator property (``if const
  then $ref``): the published ``oneOf``s overlap (``{"type": "json_object"}`` matches both
  response-format branches), so a validator would reject valid bodies as written.
- The YAML is read with YAML 1.2 booleans only: PyYAML's 1.1 rules read the enum value ``OFF``
  (``safety_mode``, ``citation_options.mode``) as ``false``.
- Request objects with declared properties get ``additionalProperties: false``: the live API
  answers 422 "unknown field" (OpenAI's per-tool ``strict`` included). Responses stay open.
- Facts the spec states only in prose are added as constraints, each listed in ``PROSE``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
COMPONENTS = "#/components/schemas/"
DROP = frozenset({"description", "example", "examples", "title", "default", "format"})
SOURCE = "github.com/cohere-ai/cohere-developer-experience cohere-openapi.yaml"

# Constraints the spec gives in descriptions, not in schema keywords (and where we found them).
PROSE: dict[tuple[str, ...], JSON] = {
    ("properties", "stop_sequences"): {"maxItems": 5},  # "A list of up to 5 strings"
    ("properties", "frequency_penalty"): {"minimum": 0, "maximum": 1},  # "min 0.0, max 1.0"
    ("properties", "presence_penalty"): {"minimum": 0, "maximum": 1},  # same
    ("properties", "max_tokens"): {"minimum": 1},
}
# Cohere's tool names: letters, digits and underscores, not starting with a digit (its 400s).
TOOL_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's (true/false), so ``OFF`` stays a string."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


class Deriver:
    """Walks one root schema, collecting the components it reaches into ``$defs``."""

    def __init__(self, components: JSON, strict: bool) -> None:
        self.components, self.strict = components, strict
        self.defs: JSON = {}
        self._wanted: list[str] = []

    def root(self, node: JSON) -> JSON:
        out = self.node(node)
        while pending := [n for n in self._wanted if n not in self.defs]:
            for name in pending:
                self.defs[name] = {}  # reserve before recursing (cycles)
                self.defs[name] = self.node(self.components[name])
        if self.defs:
            out["$defs"] = dict(sorted(self.defs.items()))
        return out

    def ref(self, ref: str) -> JSON:
        name = ref.removeprefix(COMPONENTS)
        if name not in self._wanted:
            self._wanted.append(name)
        return {"$ref": f"#/$defs/{name}"}

    def node(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.node(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return self.ref(node["$ref"])
        if "discriminator" in node:
            return self.dispatch(node)
        out: JSON = {}
        for key, value in node.items():
            if key in DROP or key.startswith("x-"):
                continue
            if key == "properties":
                out[key] = {name: self.node(sub) for name, sub in value.items()}
            else:
                out[key] = self.node(value)
        if self.strict and "properties" in out and "additionalProperties" not in out:
            if "allOf" in out:
                raise ValueError("strictness over allOf would reject valid bodies")
            out["additionalProperties"] = False
        return out

    def dispatch(self, node: JSON) -> JSON:
        """``oneOf`` + ``discriminator`` as an exact dispatch on the discriminator's value."""
        prop = node["discriminator"]["propertyName"]
        mapping = dict(node["discriminator"].get("mapping") or {})
        for branch in node.get("oneOf", ()):  # branches the mapping leaves implicit
            if "$ref" in branch and branch["$ref"] not in mapping.values():
                mapping[branch["$ref"].removeprefix(COMPONENTS)] = branch["$ref"]
        rules = [
            {"if": {"properties": {prop: {"const": key}}}, "then": self.ref(target)}
            for key, target in mapping.items()
        ]
        return {
            "type": "object",
            "required": [prop],
            "properties": {prop: {"enum": list(mapping)}},
            "allOf": rules,
        }


def derive(spec: JSON, commit: str) -> dict[str, JSON]:
    components = spec["components"]["schemas"]
    operation = spec["paths"]["/v2/chat"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    out = {
        "chat.v2.request": _schema(components, request, True, commit, "v2 chat request body"),
        "chat.v2.response": _schema(
            components, {"$ref": COMPONENTS + "ChatResponseV2"}, False, commit, "ChatResponseV2"
        ),
        "chat.v2.stream-event": _schema(
            components,
            {"$ref": COMPONENTS + "StreamedChatResponseV2"},
            False,
            commit,
            "one SSE data payload (StreamedChatResponseV2)",
        ),
    }
    error = spec["components"]["responses"]["BadRequest"]["content"]["application/json"]
    out["error"] = _schema(components, error["schema"], False, commit, "error body")
    request_schema = out["chat.v2.request"]
    for path, extra in PROSE.items():
        _at(request_schema, path).update(extra)
    tool_function = request_schema["$defs"]["ToolV2"]["properties"]["function"]
    tool_function["properties"]["name"] = dict(TOOL_NAME)
    return out


def _schema(components: JSON, root: JSON, strict: bool, commit: str, what: str) -> JSON:
    deriver = Deriver(components, strict)
    body = deriver.root(root)
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Cohere POST /v2/chat: {what}",
        "$comment": (
            f"Derived by tools/derive_cohere_schemas.py from {SOURCE} @ {commit}: structure "
            "only (types, enums, required, ranges); no text of the source is kept. "
            + ("Unknown fields rejected (the live API answers 422)." if strict else "")
        ).strip(),
    }
    return {**head, **body}


def _at(schema: JSON, path: tuple[str, ...]) -> JSON:
    node = schema
    for key in path:
        node = node[key]
    return node


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    spec = yaml.load(Path(argv[1]).read_text(), Loader=_Yaml12Loader)
    target = Path(argv[2])
    target.mkdir(parents=True, exist_ok=True)
    for name, schema in derive(spec, argv[3]).items():
        (target / f"{name}.schema.json").write_text(json.dumps(schema, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
