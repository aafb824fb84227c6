"""The ``limits:`` section: spend budgets and rate limits, frozen like the rest of a snapshot.

Amounts are kept as ``Decimal`` (from the YAML number's text, never float arithmetic); inbound
tokens a budget is scoped to are kept only as SHA-256 digests, never as the token itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from proxy.config.loader import LineIndex, Problem

PERIODS = ("minute", "hour", "day", "month")


@dataclass(frozen=True, slots=True)
class Scope:
    """Which requests a limit applies to; an empty field does not narrow it."""

    models: frozenset[str] = frozenset()  # canonical model names (aliases resolved)
    providers: frozenset[str] = frozenset()
    token_digests: frozenset[bytes] = field(default=frozenset(), repr=False)

    def covers(self, model: str, provider: str, tokens: frozenset[bytes]) -> bool:
        """``tokens``: SHA-256 digests of the credentials the request presented."""
        if self.models and model not in self.models:
            return False
        if self.providers and provider not in self.providers:
            return False
        return not self.token_digests or not self.token_digests.isdisjoint(tokens)


@dataclass(frozen=True, slots=True)
class Budget:
    """USD per fixed UTC calendar period; ``hard`` reserves the worst case before the call."""

    name: str
    usd: Decimal
    period: str = "day"
    mode: str = "hard"
    scope: Scope = Scope()
    nano: int = 0
    """The cap in whole nano-dollars (the store's unit), rounded down: never above ``usd``."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and/or tokens (input + output) per fixed UTC minute; None = not limited."""

    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    scope: Scope = Scope()


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    """Empty budgets and rate limits = the feature is off and costs nothing."""

    backend: str = "memory"
    redis_url: str = field(default="", repr=False)  # may carry a password
    fail_open: bool = True
    redis_timeout_ms: int = 250
    key_prefix: str = "llm-edge"
    budgets: tuple[Budget, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    enabled: bool = False
    token_scoped: bool = False
    """Does any limit depend on the inbound token (then the request's token is hashed)?"""


def build_limits(
    raw: Mapping[str, Any] | None, lookup: Mapping[str, Any], environ: Mapping[str, str]
) -> LimitsSettings:
    """Settings from validated data; ``lookup`` maps model names and aliases to models."""
    if not raw:
        return LimitsSettings()

    def scope(entry: Mapping[str, Any]) -> Scope:
        tokens = [environ.get(name, "") for name in entry.get("tokens_env") or ()]
        return Scope(
            models=frozenset(lookup[m].name for m in entry.get("models") or () if m in lookup),
            providers=frozenset(entry.get("providers") or ()),
            token_digests=frozenset(hashlib.sha256(t.encode()).digest() for t in tokens if t),
        )

    budgets = tuple(
        Budget(
            name=b["name"],
            usd=Decimal(str(b["usd"])),
            period=b.get("period", "day"),
            mode=b.get("mode", "hard"),
            scope=scope(b),
            nano=int(Decimal(str(b["usd"])) * 1_000_000_000),
        )
        for b in raw.get("budgets") or ()
    )
    rate_limits = tuple(
        RateLimit(
            name=r["name"],
            requests_per_minute=r.get("requests_per_minute"),
            tokens_per_minute=r.get("tokens_per_minute"),
            scope=scope(r),
        )
        for r in raw.get("rate_limits") or ()
    )
    options = {
        k: raw[k]
        for k in ("backend", "redis_url", "fail_open", "redis_timeout_ms", "key_prefix")
        if k in raw
    }
    return LimitsSettings(
        budgets=budgets,
        rate_limits=rate_limits,
        enabled=bool(budgets or rate_limits),
        token_scoped=any(rule.scope.token_digests for rule in (*budgets, *rate_limits)),
        **options,
    )


def limits_problems(
    data: Mapping[str, Any], lines: LineIndex, environ: Mapping[str, str] | None
) -> list[Problem]:
    """What the schema cannot say: unique names, known models/providers, a Redis URL."""
    raw = data.get("limits")
    if not isinstance(raw, dict):
        return []
    problems: list[Problem] = []
    models = data.get("models") if isinstance(data.get("models"), dict) else {}
    names = set(models)
    for entry in models.values():
        if isinstance(entry, dict) and isinstance(entry.get("aliases"), list):
            names.update(a for a in entry["aliases"] if isinstance(a, str))
    providers = data.get("providers") if isinstance(data.get("providers"), dict) else {}
    if raw.get("backend") == "redis" and not raw.get("redis_url"):
        problems.append(lines.problem(("limits", "backend"), "backend redis needs a redis_url"))
    for section in ("budgets", "rate_limits"):
        seen: set[str] = set()
        entries = raw.get(section) if isinstance(raw.get(section), list) else []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            path = ("limits", section, i)
            name = entry.get("name")
            if isinstance(name, str) and name in seen:
                problems.append(lines.problem((*path, "name"), f"name '{name}' is used twice"))
            seen.add(name if isinstance(name, str) else "")
            problems += _refs(entry, path, "models", names, lines)
            problems += _refs(entry, path, "providers", set(providers), lines)
            if environ is not None:
                problems += _token_refs(entry, path, environ, lines)
            if section == "rate_limits" and not (
                entry.get("requests_per_minute") or entry.get("tokens_per_minute")
            ):
                message = "needs requests_per_minute or tokens_per_minute"
                problems.append(lines.problem(path, message))
    return problems


def _refs(
    entry: Mapping[str, Any], path: tuple[Any, ...], key: str, known: set[str], lines: LineIndex
) -> list[Problem]:
    values = entry.get(key) if isinstance(entry.get(key), list) else []
    return [
        lines.problem((*path, key, i), f"'{value}' is not a configured {key[:-1]}")
        for i, value in enumerate(values)
        if isinstance(value, str) and value not in known
    ]


def _token_refs(
    entry: Mapping[str, Any], path: tuple[Any, ...], environ: Mapping[str, str], lines: LineIndex
) -> list[Problem]:
    """Fail closed, as for server.auth: an unset variable would silently scope to nothing."""
    values = entry.get("tokens_env") if isinstance(entry.get("tokens_env"), list) else []
    return [
        lines.problem((*path, "tokens_env", i), f"environment variable {name} is not set or empty")
        for i, name in enumerate(values)
        if isinstance(name, str) and not environ.get(name)
    ]


def limits_warnings(data: Mapping[str, Any], lines: LineIndex) -> list[Problem]:
    """Token-scoped limits while inbound auth is off: the gateway then checks no token, so a
    client that sends another one (or none) is outside the scope, which is rarely meant."""
    raw = data.get("limits")
    server = data.get("server") if isinstance(data.get("server"), dict) else {}
    auth = server.get("auth") if isinstance(server.get("auth"), dict) else {}
    if not isinstance(raw, dict) or auth.get("tokens_env"):
        return []
    warnings = []
    for section in ("budgets", "rate_limits"):
        entries = raw.get(section) if isinstance(raw.get(section), list) else []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("tokens_env"):
                message = (
                    "scopes by inbound token while server.auth is off: no token is checked, so "
                    "a client sending another one (or none) is not limited by this entry"
                )
                warnings.append(lines.problem(("limits", section, i, "tokens_env"), message))
    return warnings
