"""Check parsed config data: the JSON Schema first, then what a schema cannot say.

Every finding is a :class:`Problem` pointing at the offending key's line. Messages are written
here rather than taken from jsonschema, whose messages quote the offending value, and a value
might be an API key.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator, ValidationError

from proxy.config.egress import egress_problems
from proxy.config.limits import limits_problems, limits_warnings
from proxy.config.loader import LineIndex, PathParts, Problem, walk
from proxy.resources import schema_path

# Used when the vendor registry cannot be imported (e.g. a partial checkout of the package).
_BUILTIN_TYPES = ("openai", "anthropic")


@cache
def schema() -> dict[str, Any]:
    return orjson.loads(schema_path("config.schema.json").read_bytes())


@cache
def _validator() -> Draft202012Validator:
    """Compiled once per process; the format checker enforces ``as_of`` dates."""
    return Draft202012Validator(schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def known_vendor_types() -> tuple[str, ...]:
    try:
        from proxy.providers.registry import VENDORS  # lazy: the registry imports every vendor
    except ImportError:
        return _BUILTIN_TYPES
    return tuple(VENDORS)


def coerce_env_values(data: dict[str, Any], lines: LineIndex) -> dict[str, Any]:
    """A copy of ``data`` where values read from ``${VAR}`` take the type the schema expects.

    Interpolation yields strings; ``max_retries: ${RETRIES:-3}`` should still be the integer 3,
    while ``api_key: ${KEY}`` stays a string even if the key happens to be all digits.
    """
    if not lines.from_env:
        return data
    result = copy.deepcopy(data)
    for error in _validator().iter_errors(result):
        path = tuple(error.absolute_path)
        if error.validator != "type" or path not in lines.from_env:
            continue
        if not isinstance(error.instance, str):
            continue
        expected = error.validator_value
        converted = _convert(error.instance, expected if isinstance(expected, list) else [expected])
        if converted is not _FAIL:
            _assign(result, path, converted)
    return result


_FAIL = object()
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _convert(text: str, expected: list[str]) -> Any:
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return _FAIL
    for name in expected:
        kinds = _PYTHON_TYPES.get(name, ())
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            return value
    return _FAIL


def _assign(data: Any, path: PathParts, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def validate(
    data: dict[str, Any],
    lines: LineIndex,
    *,
    known_types: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem in ``data``, sorted by line. ``environ`` enables the auth token check."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        problems.extend(_schema_problems(error, lines))
    types = tuple(known_types) if known_types is not None else known_vendor_types()
    problems.extend(_semantic_problems(data, lines, types))
    problems.extend(egress_problems(dict(_entries(data, "providers")), lines, environ or {}))
    if environ is not None:
        problems.extend(_auth_problems(data, lines, environ))
    problems.extend(limits_problems(data, lines, environ))
    return sorted(set(problems), key=lambda p: (p.line or 0, p.path, p.message))


def find_warnings(data: dict[str, Any], lines: LineIndex) -> list[Problem]:
    """Loadable but probably unintended: a provider without an API key, token-scoped limits
    without inbound auth."""
    warnings = []
    for name, provider in _entries(data, "providers"):
        kind = provider.get("type")
        if kind == "vertex_ai":  # a service account's key file, not a key
            key_file = provider.get("credentials_file")
            if isinstance(key_file, str) and key_file and not os.path.isfile(
                os.path.expanduser(key_file)
            ):
                message = "not a readable file yet: this provider's models answer invalid_api_key"
                warnings.append(lines.problem(("providers", name, "credentials_file"), message))
        if kind in (*_OWN_KEY_RULES, "vertex_ai"):  # keyless is normal / Azure's are errors
            continue
        if isinstance(provider.get("api_key", ""), str) and not provider.get("api_key"):
            path = ("providers", name, "api_key")
            message = "empty: this provider's models answer invalid_api_key until a key is set"
            warnings.append(lines.problem(path if "api_key" in provider else path[:2], message))
        tls = provider.get("tls")
        if isinstance(tls, dict) and tls.get("verify") is False:
            message = (
                "is false: TLS certificates of this provider are NOT verified; anyone on the "
                "network path can read and change its traffic, API key included"
            )
            warnings.append(lines.problem(("providers", name, "tls", "verify"), message))
    return warnings + limits_warnings(data, lines)


# --- schema errors -------------------------------------------------------------------------


def _schema_problems(error: ValidationError, lines: LineIndex) -> list[Problem]:
    path = tuple(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:
        name = str(error.instance)
        return [lines.problem((*path, name), f"invalid name '{name}': {_describe(error)}")]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        return [
            lines.problem((*path, key), _unknown_key(key, allowed))
            for key in error.instance
            if key not in allowed
        ]
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [lines.problem(path, f"missing required key '{key}'") for key in missing]
    return [lines.problem(path, _describe(error))]


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = (
        f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
    )
    return f"unknown key '{key}'{hint}"


_PATTERNS = {
    "^https?://[^\\s/]+": "must be an http:// or https:// URL",
    "^[A-Za-z_][A-Za-z0-9_]*$": "must be an environment variable name",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": "must be letters, digits, '.', '_' or '-'",
}
_SCHEMA_TYPES = {"object": "mapping", "array": "list"}
_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "list",
    dict: "mapping",
    type(None): "null",
}


def _describe(error: ValidationError) -> str:
    """A message naming the rule, never quoting a string value (it could be a secret)."""
    kind, rule, value = error.validator, error.validator_value, error.instance
    shown = (
        f" (got {value})" if isinstance(value, int | float) and not isinstance(value, bool) else ""
    )
    if kind == "type":
        names = rule if isinstance(rule, list) else [rule]
        expected = " or ".join(_SCHEMA_TYPES.get(name, name) for name in names)
        return f"expected {expected}, got {_JSON_TYPES.get(type(value), type(value).__name__)}"
    messages = {
        "enum": lambda: "must be one of: " + ", ".join(map(str, rule)),
        "minimum": lambda: f"must be >= {rule}{shown}",
        "maximum": lambda: f"must be <= {rule}{shown}",
        "exclusiveMinimum": lambda: f"must be > {rule}{shown}",
        "exclusiveMaximum": lambda: f"must be < {rule}{shown}",
        "minLength": lambda: "must not be empty" if rule == 1 else f"must be at least {rule} long",
        "minProperties": lambda: "must define at least one entry",
        "uniqueItems": lambda: "must not repeat an item",
        "pattern": lambda: _PATTERNS.get(rule, f"must match {rule}"),
        "format": lambda: {"date": "must be a date YYYY-MM-DD"}.get(
            rule, f"must be a valid {rule}"
        ),
    }
    return messages[kind]() if kind in messages else f"fails the schema's '{kind}' rule"


# --- what the schema cannot say ------------------------------------------------------------


def _entries(data: dict[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(section)
    if not isinstance(items, dict):
        return []
    return [(name, entry) for name, entry in items.items() if isinstance(entry, dict)]


def _shown(lines: LineIndex, path: PathParts, value: str) -> str:
    """Quote a value written in the file; one read from the environment might be a secret."""
    return "read from the environment" if path in lines.from_env else f"'{value}'"


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _semantic_problems(
    data: dict[str, Any], lines: LineIndex, types: tuple[str, ...]
) -> list[Problem]:
    problems: list[Problem] = []
    providers = dict(_entries(data, "providers"))
    for name, provider in providers.items():
        kind = provider.get("type")
        path = ("providers", name, "type")
        if isinstance(kind, str) and kind not in types:
            shown = _shown(lines, path, kind)
            message = (
                f"unknown provider type {shown}{_suggest(kind, types)}; known: {', '.join(types)}"
            )
            problems.append(lines.problem(path, message))
    models = _entries(data, "models")
    for name, model in models:
        ref = model.get("provider")
        path = ("models", name, "provider")
        if isinstance(ref, str) and ref not in providers:
            shown = _shown(lines, path, ref)
            message = f"provider {shown} is not defined under providers{_suggest(ref, providers)}"
            problems.append(lines.problem(path, message))
    problems.extend(_name_problems(models, lines))
    problems.extend(_tier_problems(models, lines))
    problems.extend(_cache_problems(data, lines))
    problems.extend(_unpriced(models, providers, lines))
    problems.extend(_header_problems(providers, lines))
    problems.extend(_vendor_key_problems(providers, lines))
    problems.extend(_vertex_problems(providers, lines))
    problems.extend(
        lines.problem(path, "must be a finite number")
        for path, value in walk(data)
        if isinstance(value, float) and not math.isfinite(value)  # .nan passes "minimum: 0"
    )
    return problems


def _unpriced(
    models: list[tuple[str, dict[str, Any]]], providers: dict[str, Any], lines: LineIndex
) -> list[Problem]:
    """A model without ``price`` takes the catalog's; one the catalog cannot price is an error."""
    unpriced = [(n, m) for n, m in models if "price" not in m and m.get("provider") in providers]
    if not unpriced:
        return []
    from proxy.catalog import Catalog  # read only when some model relies on it

    catalog, problems = Catalog(), []
    for name, model in unpriced:
        kind = providers[model["provider"]].get("type")
        upstream = model.get("upstream_model") or name
        entry = catalog.lookup(str(kind), str(upstream), name)
        if entry is None or entry.price is None:
            message = f"missing required key 'price' (the built-in catalog has no price for {name})"
            problems.append(lines.problem(("models", name), message))
    return problems


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_problems(providers: dict[str, Any], lines: LineIndex) -> list[Problem]:
    """Keys and header values go into HTTP headers: a line break there would end the header
    (or inject another). Surrounding whitespace is fine (the key is stripped); the value itself
    is never shown, since it may be a secret."""
    fields: list[tuple[PathParts, object]] = []
    for name, provider in providers.items():
        fields.append((("providers", name, "api_key"), provider.get("api_key")))
        fields.append((("providers", name, "azure_ad_token"), provider.get("azure_ad_token")))
        headers = provider.get("headers")
        if isinstance(headers, dict):
            fields.extend((("providers", name, "headers", k), v) for k, v in headers.items())
    message = "contains a line break or control character, which cannot go in an HTTP header"
    return [
        lines.problem(path, message)
        for path, value in fields
        if isinstance(value, str) and _CONTROL.search(value.strip())
    ]


_OWN_KEY_RULES = ("openai_compatible", "azure_openai")
_ONLY_FOR = {
    "api_version": "azure_openai",
    "azure_ad_token": "azure_openai",
    "azure_ad_token_file": "azure_openai",
    "send_stream_options": "openai_compatible",
}
_API_VERSION = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(-preview)?$")
_AZURE_CREDENTIALS = ("api_key", "azure_ad_token", "azure_ad_token_file")


def _vendor_key_problems(providers: dict[str, Any], lines: LineIndex) -> list[Problem]:
    """Keys that belong to one provider type, and what ops get wrong with Azure."""
    problems: list[Problem] = []
    for name, provider in providers.items():
        kind = provider.get("type")
        for key, owner in _ONLY_FOR.items():
            if key in provider and isinstance(kind, str) and kind != owner:
                message = f"only applies to type {owner} providers (this one is {kind})"
                problems.append(lines.problem(("providers", name, key), message))
        if kind == "azure_openai":
            problems.extend(_azure_problems(name, provider, lines))
    return problems


def _azure_problems(name: str, provider: dict[str, Any], lines: LineIndex) -> list[Problem]:
    base = ("providers", name)
    problems: list[Problem] = []
    given = [k for k in _AZURE_CREDENTIALS if isinstance(provider.get(k), str) and provider[k]]
    if not given:
        where = (*base, "api_key") if "api_key" in provider else base
        problems.append(
            lines.problem(
                where,
                "an azure_openai provider needs api_key or azure_ad_token (or "
                "azure_ad_token_file); none is set or all are empty",
            )
        )
    elif len(given) > 1:
        message = f"set only one of {', '.join(given)}: Azure takes one credential per request"
        problems.append(lines.problem((*base, given[1]), message))
    version = provider.get("api_version")
    path = (*base, "api_version")
    if isinstance(version, str) and not _API_VERSION.match(version):
        shown = _shown(lines, path, version)
        problems.append(
            lines.problem(
                path,
                f"malformed api_version {shown}: expected YYYY-MM-DD or YYYY-MM-DD-preview "
                "(e.g. 2024-10-21); omit it for the v1 API",
            )
        )
    token_file = provider.get("azure_ad_token_file")
    if isinstance(token_file, str) and token_file:
        problems.extend(_token_file_problems((*base, "azure_ad_token_file"), token_file, lines))
    return problems


def _token_file_problems(path: PathParts, file: str, lines: LineIndex) -> list[Problem]:
    try:
        content = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return [lines.problem(path, f"cannot read the token file ({reason})")]
    if not content.strip():
        return [lines.problem(path, "the token file is empty")]
    if _CONTROL.search(content.strip()):
        return [lines.problem(path, "the token file has a line break inside the token")]
    return []


_VERTEX_KEYS = ("project", "location", "credentials_file")


def _vertex_problems(providers: dict[str, Any], lines: LineIndex) -> list[Problem]:
    """A vertex_ai provider needs its project, location and key file (and may omit base_url);
    others take none of these and need a base_url."""
    problems = []
    for name, provider in providers.items():
        vertex = provider.get("type") == "vertex_ai"
        if not vertex and "base_url" not in provider:
            problems.append(lines.problem(("providers", name), "missing required key 'base_url'"))
        for key in _VERTEX_KEYS:
            if vertex and not provider.get(key):
                message = f"a vertex_ai provider needs '{key}'"
                problems.append(lines.problem(("providers", name), message))
            elif not vertex and key in provider:
                message = "only applies to type vertex_ai providers"
                problems.append(lines.problem(("providers", name, key), message))
    return problems


def _name_problems(models: list[tuple[str, dict[str, Any]]], lines: LineIndex) -> list[Problem]:
    """Aliases must not collide; fallbacks must name a model (or alias) other than their own."""
    problems: list[Problem] = []
    owner = {name: name for name, _ in models}
    for name, model in models:
        for i, alias in enumerate(_strings(model.get("aliases"))):
            path = ("models", name, "aliases", i)
            if alias in owner and owner[alias] != name:
                message = f"alias {_shown(lines, path, alias)} is already used by model"
                problems.append(lines.problem(path, f"{message} '{owner[alias]}'"))
            elif alias == name:
                message = f"alias {_shown(lines, path, alias)} repeats the model's own name"
                problems.append(lines.problem(path, message))
            else:
                owner.setdefault(alias, name)
    for name, model in models:
        for i, target in enumerate(_strings(model.get("fallbacks"))):
            path = ("models", name, "fallbacks", i)
            if target not in owner:
                shown = _shown(lines, path, target)
                message = f"fallback {shown} is not a configured model{_suggest(target, owner)}"
                problems.append(lines.problem(path, message))
            elif owner[target] == name:
                problems.append(lines.problem(path, f"model '{name}' cannot fall back to itself"))
    return problems


def _tier_problems(models: list[tuple[str, dict[str, Any]]], lines: LineIndex) -> list[Problem]:
    """Two price tiers starting at the same prompt size would make a request's price a guess."""
    problems: list[Problem] = []
    for name, model in models:
        price = model.get("price")
        tiers = price.get("tiers") if isinstance(price, dict) else None
        seen: set[object] = set()
        for i, tier in enumerate(tiers if isinstance(tiers, list) else ()):
            above = tier.get("above_prompt_tokens") if isinstance(tier, dict) else None
            if above in seen:
                path = ("models", name, "price", "tiers", i, "above_prompt_tokens")
                problems.append(lines.problem(path, f"a tier above {above} tokens is already set"))
            seen.add(above)
    return problems


def _cache_problems(data: dict[str, Any], lines: LineIndex) -> list[Problem]:
    """The Redis backend needs to know where Redis is."""
    cache = data.get("cache")
    if isinstance(cache, dict) and cache.get("backend") == "redis" and not cache.get("redis_url"):
        return [lines.problem(("cache",), "missing required key 'redis_url' (backend: redis)")]
    return []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _auth_problems(
    data: dict[str, Any], lines: LineIndex, environ: Mapping[str, str]
) -> list[Problem]:
    """Fail closed: a token variable that is unset would silently leave the gateway open."""
    server = data.get("server")
    auth = server.get("auth") if isinstance(server, dict) else None
    names = _strings(auth.get("tokens_env")) if isinstance(auth, dict) else []
    return [
        lines.problem(
            ("server", "auth", "tokens_env", i),
            f"environment variable {name} is not set or empty; no token would be accepted from it",
        )
        for i, name in enumerate(names)
        if not environ.get(name)
    ]
