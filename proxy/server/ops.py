"""Operational endpoints: liveness, readiness, status, models list, provider health, metrics."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from proxy.config.snapshot import ModelConfig
from proxy.engine import health
from proxy.engine.limits.report import limits_status
from proxy.engine.state import GatewayState
from proxy.server.keys import STATE


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state: GatewayState = request.app[STATE]
    if state.draining:
        return _json({"status": "draining"}, status=503)
    return _json({"status": "ready", "config_version": state.snapshot.version})


async def status(request: web.Request) -> web.Response:
    """Config version, load time, last reload result, circuit states. Never a secret."""
    state: GatewayState = request.app[STATE]
    snapshot, reload = state.snapshot, state.last_reload
    breakers = state.breakers.states()
    limits = await limits_status(state.limits, snapshot.limits) if snapshot.limits.enabled else None
    return _json(
        {
            "config": {
                "version": snapshot.version,
                "source": snapshot.source,
                "loaded_at": _iso(snapshot.loaded_at),
                "warnings": list(snapshot.warnings),
            },
            "last_reload": {
                "ok": reload.ok,
                "at": _iso(reload.at),
                "error": reload.error,
                "trigger": reload.source,
            },
            "providers": {
                name: {
                    "type": p.type,
                    "base_url": p.base_url,
                    "circuit": breakers.get(name, "closed"),
                }
                for name, p in snapshot.providers.items()
            },
            "models": len(snapshot.models),
            "in_flight": state.in_flight,
            "streams_open": state.streams_open,
            "draining": state.draining,
            "pid": os.getpid(),  # with --workers N, tells which worker answered
            "limits": limits,  # budgets and rate limits (issue 17); null when none configured
        }
    )


async def models(request: web.Request) -> web.Response:
    """OpenAI's list format, or Anthropic's when the request carries ``anthropic-version``."""
    snapshot = request.app[STATE].snapshot
    entries = [(name, m) for m in snapshot.models.values() for name in (m.name, *m.aliases)]
    created = int(snapshot.loaded_at)
    if "anthropic-version" in request.headers:
        data = [
            {
                "type": "model",
                "id": name,
                "display_name": model.display_name or name,
                "created_at": _iso(_released(model, snapshot.loaded_at)),
            }
            for name, model in entries
        ]
        return _json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    return _json(
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": int(_released(model, created)),
                    "owned_by": model.provider,
                    "capabilities": model.capabilities.known(),
                }
                for name, model in entries
            ],
        }
    )


async def providers_health(request: web.Request) -> web.Response:
    """Active checks of every provider (or recent background results when configured)."""
    state: GatewayState = request.app[STATE]
    fresh_enough = _recent(state)
    results = fresh_enough if fresh_enough is not None else await health.check_all(state)
    body = {name: h.as_dict() for name, h in results.items()}
    healthy = all(h.healthy for h in results.values())
    return _json(body, status=200 if healthy else 503)


def _recent(state: GatewayState) -> dict[str, health.Health] | None:
    """Background results, when every provider has one younger than twice its interval."""
    out = {}
    for name, provider in state.snapshot.providers.items():
        result = state.health.get(name)
        interval = provider.health_check.interval_s
        if interval <= 0 or result is None or time.time() - result.checked_at > 2 * interval:
            return None
        out[name] = result
    return out


def _released(model: ModelConfig, default: float) -> float:
    """The model's release date (from the catalog) as an epoch, else ``default``."""
    if not model.released:
        return default
    try:
        return datetime.fromisoformat(model.released).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return default


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
