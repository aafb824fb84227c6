"""The response cache's settings, resolved per model when the snapshot is built.

Off by default. The top-level ``cache:`` section chooses the backend and the defaults; a
model's own ``cache: {enabled, ttl_s}`` overrides them for that model only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

MEMORY = "memory"
REDIS = "redis"


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Where entries live; a change here (on reload) replaces the backend, nothing else does."""

    kind: str = MEMORY
    max_bytes: int = 64 * 1024 * 1024
    redis_url: str = field(default="", repr=False)  # may hold a password
    redis_timeout_ms: float = 50
    key_prefix: str = "llm-edge:cache:"
    compress_min_bytes: int = 1024


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """``ttl_s`` per model name for the models the cache applies to (absent = not cached)."""

    backend: BackendSettings = BackendSettings()
    models: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def ttl_for(self, model: str) -> float | None:
        return self.models.get(model)


def build_cache(top: Mapping[str, Any] | None, models: Mapping[str, Any]) -> CacheSettings:
    """From validated data: the top-level ``cache`` section and the ``models`` section."""
    top = top if isinstance(top, dict) else {}
    enabled, ttl_s = bool(top.get("enabled", False)), float(top.get("ttl_s", 3600))
    ttls: dict[str, float] = {}
    for name, model in models.items():
        own = model.get("cache") if isinstance(model, dict) else None
        own = own if isinstance(own, dict) else {}
        if own.get("enabled", enabled):
            ttls[name] = float(own.get("ttl_s", ttl_s))
    keys = ("max_bytes", "redis_url", "redis_timeout_ms", "key_prefix", "compress_min_bytes")
    backend = BackendSettings(
        kind=str(top.get("backend", MEMORY)), **{k: top[k] for k in keys if k in top}
    )
    return CacheSettings(backend=backend, models=MappingProxyType(ttls))
