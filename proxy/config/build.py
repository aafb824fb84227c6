"""Turn validated config data into the frozen :class:`Snapshot` the engine reads.

Settings resolve most specific first, field by field: a model's ``retry: {max_retries: 0}``
changes only that field and keeps the provider's and top level's other retry fields.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.capabilities.model import Capabilities
from proxy.catalog import Catalog, Entry
from proxy.config.aliases import implicit
from proxy.config.cache import build_cache
from proxy.config.egress import proxy_from_env
from proxy.config.limits import build_limits
from proxy.config.loader import ConfigError, Problem, read_document
from proxy.config.snapshot import (
    AuthSettings,
    BreakerSettings,
    HealthCheckSettings,
    LoggingSettings,
    ModelConfig,
    PoolSettings,
    ProviderConfig,
    RetryPolicy,
    ServerSettings,
    Snapshot,
    Timeouts,
    TLSSettings,
)
from proxy.config.validate import coerce_env_values, find_warnings, validate
from proxy.pricing import Price

Data = Mapping[str, Any]


def _whole(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; the engine should still get the int 3."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _section(*layers: Any) -> dict[str, Any]:
    """Merge dict layers, later ones winning field by field; non-dicts count as empty."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, dict):
            merged.update({key: _whole(value) for key, value in layer.items()})
    return merged


def _price(price: Data) -> Price:
    """Decimal from the number's text, never from float arithmetic: 0.03 stays 0.03."""

    def exact(key: str) -> Decimal | None:
        value = price.get(key)
        return None if value is None else Decimal(str(value))

    tiers = sorted(price.get("tiers") or (), key=lambda tier: int(tier["above_prompt_tokens"]))
    return Price(
        input_per_1k=exact("input_per_1k") or Decimal(0),
        output_per_1k=exact("output_per_1k") or Decimal(0),
        cache_read_per_1k=exact("cache_read_per_1k"),
        cache_write_per_1k=exact("cache_write_per_1k"),
        tiers=tuple((int(tier["above_prompt_tokens"]), _price(tier)) for tier in tiers),
    )


def _provider(name: str, raw: Data, top: Data, environ: Mapping[str, str]) -> ProviderConfig:
    def merged(key: str) -> dict[str, Any]:
        return _section(top.get(key), raw.get(key))

    base_url = str(raw.get("base_url") or _default_base_url(raw)).rstrip("/")
    # The environment is read here, once per load: requests never look at it.
    proxy_url = raw["proxy_url"] if "proxy_url" in raw else proxy_from_env(base_url, environ)

    keys = ("anthropic_version", "drop_unsupported_params", "api_version", "send_stream_options")
    optional = {k: raw[k] for k in keys if k in raw}
    optional.update(_vertex(raw))
    return ProviderConfig(
        name=name,
        type=raw["type"],
        base_url=base_url,
        api_key=(raw.get("api_key") or "").strip(),  # a key file's trailing newline
        retry=RetryPolicy(**merged("retry")),
        timeouts=Timeouts(**merged("timeouts")),
        pool=PoolSettings(**merged("pool")),
        breaker=BreakerSettings(**merged("breaker")),
        health_check=HealthCheckSettings(**merged("health_check")),
        headers=MappingProxyType(dict(raw.get("headers") or {})),
        azure_ad_token=azure_ad_token(raw),
        azure_ad_token_file=raw.get("azure_ad_token_file") or None,
        proxy_url=proxy_url or None,
        tls=TLSSettings(**_section(raw.get("tls"))),
        **optional,
    )


def azure_ad_token(raw: Data) -> str:
    """The Entra ID token: ``azure_ad_token`` (``${VAR}``), else the mounted file's content
    (read at every load, so a rotated token applies at the next reload)."""
    token = str(raw.get("azure_ad_token") or "").strip()
    path = raw.get("azure_ad_token_file")
    if not token and path:
        token = Path(path).read_text(encoding="utf-8").strip()  # validated readable
    return token


def _vertex(raw: Data) -> dict[str, str]:
    """vertex_ai's keys; the key file's path is made absolute (the token source's identity)."""
    out = {k: str(raw[k]) for k in ("project", "location") if k in raw}
    if raw.get("credentials_file"):
        out["credentials_file"] = os.path.abspath(os.path.expanduser(raw["credentials_file"]))
    return out


def _default_base_url(raw: Data) -> str:
    """Only vertex_ai may omit base_url (the schema says so): its host follows the location."""
    from proxy.providers.gemini import vertex_base_url

    return vertex_base_url(str(raw.get("location") or "global"))


def _model(name: str, raw: Data, provider_raw: Data, top: Data, catalog: Catalog) -> ModelConfig:
    def merged(key: str) -> dict[str, Any]:
        return _section(top.get(key), provider_raw.get(key), raw.get(key))

    drop = raw.get("drop_unsupported_params", provider_raw.get("drop_unsupported_params", False))
    upstream = raw.get("upstream_model") or name
    entry = catalog.lookup(provider_raw["type"], upstream, name)
    caps = Capabilities.merged(entry.capabilities if entry else None, raw.get("capabilities"))
    optional = _catalog_fields(raw, entry, caps)
    if "max_tokens" in raw:
        optional["max_tokens"] = _whole(raw["max_tokens"])
    return ModelConfig(
        name=name,
        provider=raw["provider"],
        upstream_model=upstream,
        aliases=tuple(raw.get("aliases") or ()),
        retry=RetryPolicy(**merged("retry")),
        timeouts=Timeouts(**merged("timeouts")),
        fallbacks=tuple(raw.get("fallbacks") or ()),
        drop_unsupported_params=bool(drop),
        capabilities=caps,
        **optional,
    )


def _catalog_fields(raw: Data, entry: Entry | None, caps: Capabilities) -> dict[str, Any]:
    """Price (the config's, else the catalog's), names and dates the catalog contributes."""
    out: dict[str, Any] = {}
    if "price" in raw:
        out.update(price=_price(raw["price"]), price_date=raw["price"].get("as_of"))
    elif entry is not None and entry.price is not None:  # validate() made sure of it
        out.update(price=entry.price, price_date=entry.price_date, price_source="catalog")
    if entry is not None:
        out.update(display_name=entry.name, released=entry.released)
    if caps.max_output_tokens is not None and "max_tokens" not in raw:
        out["max_tokens"] = min(4096, caps.max_output_tokens)  # the default must be allowed
    return out


def _server(raw: Data, environ: Mapping[str, str]) -> ServerSettings:
    auth = _section(raw.get("auth"))
    names = auth.pop("tokens_env", [])
    tokens = tuple(environ[n] for n in names if environ.get(n))
    return ServerSettings(
        **{k: _whole(raw[k]) for k in ("max_body_bytes", "drain_timeout_s") if k in raw},
        auth=AuthSettings(tokens=tokens, **auth),
        logging=LoggingSettings(**_section(raw.get("logging"))),
    )


def build_snapshot(
    data: dict[str, Any],
    *,
    source: str,
    raw: bytes,
    warnings: list[str],
    environ: Mapping[str, str] | None = None,
) -> Snapshot:
    """A snapshot from data that already passed :func:`validate` (``environ`` for auth tokens)."""
    env = os.environ if environ is None else environ
    providers_raw: dict[str, Data] = data["providers"]
    providers = {name: _provider(name, p, data, env) for name, p in providers_raw.items()}
    catalog = Catalog()
    models = {
        name: _model(name, m, providers_raw[m["provider"]], data, catalog)
        for name, m in data["models"].items()
    }
    lookup = dict(models)
    for model in models.values():
        lookup.update(dict.fromkeys(model.aliases, model))
    extra, ambiguous = implicit(lookup)
    lookup.update(extra)
    env = os.environ if environ is None else environ
    return Snapshot(
        providers=MappingProxyType(providers),
        models=MappingProxyType(models),
        lookup=MappingProxyType(lookup),
        ambiguous=MappingProxyType(ambiguous),
        server=_server(_section(data.get("server")), env),
        version=hashlib.sha256(raw).hexdigest()[:12],
        loaded_at=time.time(),
        source=source,
        warnings=tuple(warnings),
        cache=build_cache(data.get("cache"), data["models"]),
        limits=build_limits(data.get("limits"), lookup, env),
    )


def _load(
    path: Path, environ: Mapping[str, str]
) -> tuple[bytes, dict[str, Any], list[Problem], list[str]]:
    """Read, parse, interpolate, coerce, validate: raw bytes, data, problems, warnings."""
    raw, data, lines, problems = read_document(path, environ)
    if data is None:  # unreadable or not YAML: nothing more to check
        return raw, {}, problems, []
    data = coerce_env_values(data, lines)
    reported = {p.path for p in problems}  # an unset ${VAR} need not also be "too short"
    problems += [p for p in validate(data, lines, environ=environ) if p.path not in reported]
    problems.sort(key=lambda p: (p.line or 0, p.path))
    reported |= {p.path for p in problems}
    warnings = [str(w) for w in find_warnings(data, lines) if w.path not in reported]
    return raw, data, problems, warnings


def load_snapshot(path: str | Path, environ: Mapping[str, str] | None = None) -> Snapshot:
    """The one entry point: read, parse, interpolate, validate, build; or raise ConfigError."""
    env = os.environ if environ is None else environ
    raw, data, problems, warnings = _load(Path(path), env)
    if problems:
        raise ConfigError(problems)
    return build_snapshot(data, source=str(path), raw=raw, warnings=warnings, environ=env)


def check(path: str | Path) -> tuple[list[str], list[str]]:
    """For ``llm-edge-agent check``: (problem lines, warning lines), read against os.environ."""
    _, _, problems, warnings = _load(Path(path), os.environ)
    return [str(p) for p in problems], warnings
