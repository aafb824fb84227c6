"""Derive a strict JSON Schema of Gemini's ``GenerateContentRequest`` REST body from Google's
published API description: the protobuf definitions of ``google.ai.generativelanguage.v1beta``
(github.com/googleapis/googleapis, Apache-2.0; copied in ``schemas/gemini/proto/``).

    python3 proxy/sim/vendor/tools/build_gemini_schema.py   # rewrites the schema next to proto/

Proto3 JSON mapping: field names in lowerCamelCase; enums by name; ``bytes`` as base64 text;
64-bit integers as numbers or decimal strings; ``Struct`` an object, ``Value`` anything,
``Duration`` ``"1.5s"``. Strict: unknown fields are refused (``additionalProperties: false``,
as the live API answers "Unknown name"), fields marked ``REQUIRED`` are required, a ``oneof``
takes at most one member, and ``Part.data`` exactly one ("required oneof field 'data' must
have one initialized field"). Stricter than the live API on purpose: snake_case field names
(which the API also accepts) are refused, since gateways must send camelCase (MAPPING §7).
Departures from the protos, each because the live API and Google's SDK do otherwise:
``model`` is dropped from the body (it is in the URL); ``FunctionDeclaration.description``
is optional (google-genai's type marks it so and the API accepts declarations without one);
``Schema.type`` is also accepted in lower case, as Google's own REST examples write it.
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "schemas" / "gemini"
PROTOS = ("content", "generative_service", "safety", "citation", "retriever")
ROOT = "GenerateContentRequest"
OUT = HERE / "generateContent.request.schema.json"
SOURCE = (
    "github.com/googleapis/googleapis google/ai/generativelanguage/v1beta/*.proto "
    "@ f8291d2b89f0017ab078a4c7378069bae5686f6f (2026-08-22), Apache-2.0"
)
REQUIRED_ONEOFS = {("Part", "data")}
RELAXED = {("FunctionDeclaration", "description")}
DROPPED = {(ROOT, "model")}
LOWERCASE_TOO = {"Type"}  # Google's REST examples write schema types as "object", "string"

SCALARS: dict[str, dict] = {
    "string": {"type": "string"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    **{t: {"type": "integer"} for t in ("int32", "uint32", "sint32", "fixed32", "sfixed32")},
    **{
        t: {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}]}
        for t in ("int64", "uint64", "sint64", "fixed64", "sfixed64")
    },
}
WELL_KNOWN: dict[str, dict] = {
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Empty": {"type": "object", "maxProperties": 0},
    "google.type.Interval": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "startTime": {"type": "string", "format": "date-time"},
            "endTime": {"type": "string", "format": "date-time"},
        },
    },
    "google.type.LatLng": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
    },
}
FIELD = re.compile(
    r"^(repeated\s+|optional\s+)?(map<\s*\w+\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*\d+"
    r"\s*(\[[^;]*\])?\s*;",
    re.S,
)


def strip_comments(text: str) -> str:
    """Comments, services and option values (which hold braces of their own) removed; a
    field's options reduced to ``[REQUIRED]`` when they say so."""
    text = re.sub(r"//[^\n]*", "", text)
    text = _drop_blocks(text, re.compile(r"\bservice\s+\w+\s*\{"))
    text = _drop_blocks(text, re.compile(r"\boption\s*\([^)]*\)\s*=\s*\{"), tail=";")
    return re.sub(r"\[[^\]]*\]", lambda m: "[REQUIRED]" if "REQUIRED" in m.group() else "", text)


def _drop_blocks(text: str, opening: re.Pattern[str], tail: str = "") -> str:
    """Remove each ``opening ... }`` block (braces balanced), and a ``tail`` right after it."""
    while (match := opening.search(text)) is not None:
        depth, at = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        if tail and text[at:].lstrip().startswith(tail):
            at = text.index(tail, at) + len(tail)
        text = text[: match.start()] + text[at:]
    return text


def parse(text: str) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Messages (qualified name -> {fields, oneofs}) and enums (qualified name -> values)."""
    messages: dict[str, dict] = {}
    enums: dict[str, list[str]] = {}
    tokens = re.findall(r"\{|\}|[^{}]+", strip_comments(text))
    stack: list[tuple[str, str, str | None]] = []  # (kind, qualified name, oneof)
    for token in tokens:
        if token == "{":
            continue
        if token == "}":
            if stack:
                stack.pop()
            continue
        for statement in _statements(token):
            _statement(statement, stack, messages, enums)
    return messages, enums


def _statements(chunk: str) -> list[str]:
    """Split a brace-free chunk into statements; an opening header stays last, unterminated."""
    parts = [p.strip() for p in chunk.split(";")]
    out = [p + ";" for p in parts[:-1] if p]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _statement(st: str, stack: list, messages: dict, enums: dict) -> None:
    scope = stack[-1][1] if stack and stack[-1][0] in ("message", "oneof") else ""
    message_scope = next((name for kind, name, _ in reversed(stack) if kind == "message"), "")
    head = re.match(r"^(message|enum|oneof|service|rpc|extend)\s+(\w+)", st)
    if head and not st.endswith(";"):
        kind, name = head.groups()
        if kind == "message":
            qualified = f"{message_scope}.{name}" if message_scope else name
            messages[qualified] = {"fields": [], "oneofs": {}}
            stack.append(("message", qualified, None))
        elif kind == "enum":
            qualified = f"{message_scope}.{name}" if message_scope else name
            enums[qualified] = []
            stack.append(("enum", qualified, None))
        elif kind == "oneof":
            messages[message_scope]["oneofs"][name] = []
            stack.append(("oneof", message_scope, name))
        else:
            stack.append((kind, name, None))
        return
    if not stack:
        return
    kind, owner, oneof = stack[-1]
    if kind == "enum":
        match = re.match(r"^(\w+)\s*=", st)
        if match and not re.match(r"option\b", st):
            enums[owner].append(match.group(1))
        return
    if kind not in ("message", "oneof") or re.match(r"(option|reserved)\b", st):
        return
    match = FIELD.match(st)
    if match is None:
        return
    label, type_, map_value, name, options = match.groups()
    field = {
        "name": name,
        "type": map_value or type_,
        "map": bool(map_value),
        "repeated": (label or "").strip() == "repeated",
        "required": "REQUIRED" in (options or ""),
    }
    messages[owner]["fields"].append(field)
    if oneof:
        messages[owner]["oneofs"][oneof].append(name)
    del scope


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def resolve(type_: str, scope: str, messages: dict, enums: dict) -> str:
    """The qualified name of ``type_`` seen from message ``scope`` (innermost first)."""
    name = type_.removeprefix("google.ai.generativelanguage.v1beta.")
    parts = scope.split(".") if scope else []
    for depth in range(len(parts), -1, -1):
        candidate = ".".join([*parts[:depth], name])
        if candidate in messages or candidate in enums:
            return candidate
    raise KeyError(f"unresolved type {type_} in {scope}")


def build() -> dict:
    messages: dict[str, dict] = {}
    enums: dict[str, list[str]] = {}
    for proto in PROTOS:
        m, e = parse((HERE / "proto" / f"{proto}.proto").read_text())
        messages.update(m)
        enums.update(e)
    defs: dict[str, dict] = {}
    todo = [ROOT]
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        if name in enums:
            values = enums[name]
            if name in LOWERCASE_TOO:
                values = values + [v.lower() for v in values]
            defs[name] = {"type": "string", "enum": values}
            continue
        defs[name] = _message_schema(name, messages, enums, todo)
    root = defs.pop(ROOT)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Generated by tools/build_gemini_schema.py from {SOURCE}.",
        "title": "GenerateContentRequest (REST body, camelCase, strict)",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _field_schema(field: dict, owner: str, messages: dict, enums: dict, todo: list) -> dict:
    type_ = field["type"]
    if type_ in SCALARS:
        item = dict(SCALARS[type_])
    elif type_ in WELL_KNOWN:
        item = dict(WELL_KNOWN[type_])
    else:
        target = resolve(type_, owner, messages, enums)
        todo.append(target)
        item = {"$ref": f"#/$defs/{target}"}
    if field["map"]:
        return {"type": "object", "additionalProperties": item}
    if field["repeated"]:
        return {"type": "array", "items": item}
    return item


def _message_schema(name: str, messages: dict, enums: dict, todo: list) -> dict:
    message = messages[name]
    properties: dict[str, dict] = {}
    required: list[str] = []
    short = name.rsplit(".", 1)[-1]
    for field in message["fields"]:
        if (short, field["name"]) in DROPPED:
            continue
        key = camel(field["name"])
        properties[key] = _field_schema(field, name, messages, enums, todo)
        if field["required"] and (short, field["name"]) not in RELAXED:
            required.append(key)
    schema: dict = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    rules: list[dict] = []
    for oneof, members in message["oneofs"].items():
        keys = [camel(m) for m in members]
        if (short, oneof) in REQUIRED_ONEOFS:
            rules.append({"oneOf": [{"required": [k]} for k in keys]})
        else:
            rules += [{"not": {"required": [a, b]}} for a, b in combinations(keys, 2)]
    if rules:
        schema["allOf"] = rules
    return schema


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
