"""The README's configuration reference, generated from the config schema so it cannot drift.

``python -m proxy.config.reference`` prints it; ``--write README.md`` replaces the block
between the ``config-reference`` markers in place. A test keeps the README equal to this.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from proxy.config.validate import schema

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"

_INTRO = """\
Generated from `schema/config.schema.json` by `python -m proxy.config.reference`; do not edit
by hand. `<name>` stands for a key you choose. Unknown keys are errors (with a "did you mean").

Values may read the environment: `${VAR}` (an error if `VAR` is unset), `${VAR:-default}`
(`default` when `VAR` is unset or empty; `${VAR:-}` allows empty), and `$${` for a literal
`${`. Only values are interpolated, never keys. A value read this way takes the type the
schema expects there, so `max_retries: ${RETRIES:-3}` is the integer 3, while an `api_key`
stays a string.

`retry` and `timeouts` resolve per model, then per provider, then top level, then the
default, field by field; `pool`, `breaker` and `health_check` per provider, then top level.
"""


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _target(node: dict[str, Any]) -> dict[str, Any]:
    name = _ref_name(node)
    return schema()["$defs"][name] if name else node


def _type(node: dict[str, Any]) -> str:
    """``integer >= 0``, ``string (date)``, ``list of string``, ``one of: json, text``."""
    target = _target(node)
    if "enum" in target:
        return "one of: " + ", ".join(f"`{v}`" for v in target["enum"])
    kinds = target.get("type", "object")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = " or ".join(k for k in kinds if k != "null")
    if text == "array":
        text = f"list of {_type(target.get('items', {}))}"
    if text == "object" and isinstance(target.get("additionalProperties"), dict):
        text = f"map of `<name>` to {_type(target['additionalProperties'])}"
    if "format" in target:
        text += f" ({target['format']})"
    bounds = [
        f"{op} {target[key]}"
        for key, op in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if key in target
    ]
    text = f"{text} {', '.join(bounds)}" if bounds else text
    return f"{text} or null" if "null" in kinds else text


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    return f"`{orjson.dumps(node['default']).decode()}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: dict[str, Any], prefix: str, shared: set[str]) -> Iterator[tuple[str, ...]]:
    """One row per key under ``node``; a shared section is expanded only at the top level."""
    target = _target(node)
    if isinstance(target.get("additionalProperties"), dict):
        target = _target(target["additionalProperties"])
        prefix = f"{prefix}.<name>"
    required = set(target.get("required", ()))
    for key, child in target.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        ref, inner = _ref_name(child), _target(child)
        entries = inner.get("additionalProperties")
        if ref in shared and prefix:
            kind, nested = f"mapping: the keys of `{ref}`", False
        elif "properties" in inner:
            kind, nested = "mapping", True
        elif isinstance(entries, dict) and "properties" in _target(entries):
            kind, nested = "map of `<name>` to mapping", True
        else:
            kind, nested = _type(child), False
        yield f"`{path}`", kind, _default(child, key in required), _cell(child["description"])
        if nested:
            yield from _rows(child, path, shared)


def render_reference() -> str:
    """The Markdown reference: an introduction and a table of every key."""
    root = schema()
    shared = {name for child in root["properties"].values() if (name := _ref_name(child))}
    shared.discard("server")
    lines = [_INTRO, "| key | type | default | description |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(root, "", shared)]
    return "\n".join(lines) + "\n"


def splice(document: str, reference: str) -> str:
    """``document`` with the text between the markers replaced by ``reference``."""
    head, start, rest = document.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"markers {START} ... {END} not found")
    return f"{head}{START}\n{reference}{END}{tail}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        readme = Path(argv[1])
        readme.write_text(splice(readme.read_text(encoding="utf-8"), render_reference()))
        return 0
    if argv:
        print("usage: python -m proxy.config.reference [--write README.md]", file=sys.stderr)
        return 2
    sys.stdout.write(render_reference())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
