"""Routing: a requested model name or alias becomes a target (model, provider, vendor)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config.snapshot import ModelConfig, ProviderConfig, Snapshot
from proxy.errors import GatewayError, ambiguous_model, model_not_found
from proxy.providers.base import Vendor
from proxy.providers.registry import vendor_for


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes."""

    model: ModelConfig
    provider: ProviderConfig
    vendor: Vendor

    @property
    def upstream_model(self) -> str:
        return self.model.upstream_model or self.model.name


def resolve(snapshot: Snapshot, name: str) -> Target:
    """The target for ``name``; an unknown name is a 404 before any upstream call."""
    model = snapshot.resolve(name)
    if model is None:
        raise not_found(snapshot, name)
    provider = snapshot.providers[model.provider]
    return Target(model, provider, vendor_for(provider.type))


def not_found(snapshot: Snapshot, name: str) -> GatewayError:
    """The 404 for a name that resolves to no model (listing candidates when ambiguous)."""
    candidates = snapshot.ambiguous.get(name)
    return ambiguous_model(name, candidates) if candidates else model_not_found(name)


def chain(snapshot: Snapshot, primary: Target) -> list[Target]:
    """The primary target followed by its configured fallbacks, each model at most once."""
    targets = [primary]
    seen = {primary.model.name}
    for name in primary.model.fallbacks:
        model = snapshot.resolve(name)
        if model is None or model.name in seen:
            continue
        seen.add(model.name)
        provider = snapshot.providers[model.provider]
        targets.append(Target(model, provider, vendor_for(provider.type)))
    return targets
