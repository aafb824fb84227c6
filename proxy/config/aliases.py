"""Implicit aliases: the dated and undated names of a configured dated snapshot.

A model configured as ``claude-3-5-sonnet-20241022`` also answers to ``claude-3-5-sonnet``
and ``claude-3-5-sonnet-latest`` (a date is ``-YYYYMMDD`` or ``-YYYY-MM-DD``). The undated
name is ambiguous when several configured snapshots share it (then a 404 lists them); the
``-latest`` name is the newest of them. Configured names and explicit ``aliases`` always win,
and nothing maps a dated name onto an undated model (``gpt-4o-2024-08-06`` is ``gpt-4o`` only
when the config says so: an undated model may move to a newer snapshot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from proxy.config.snapshot import ModelConfig

_DATED = re.compile(r"^(?P<base>.+?)-(?P<date>\d{8}|\d{4}-\d{2}-\d{2})$")


def implicit(
    lookup: Mapping[str, ModelConfig],
) -> tuple[dict[str, ModelConfig], dict[str, tuple[str, ...]]]:
    """Extra names -> model, and ambiguous names -> the configured names they could mean."""
    dated: dict[str, list[tuple[str, str, ModelConfig]]] = {}
    for name, model in lookup.items():
        match = _DATED.match(name)
        if match:
            date = match["date"].replace("-", "")
            dated.setdefault(match["base"], []).append((date, name, model))
    extra: dict[str, ModelConfig] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    for base, snapshots in dated.items():
        models = {id(model): model for _, _, model in snapshots}
        newest = max(snapshots, key=lambda s: s[0])[2]
        if f"{base}-latest" not in lookup:
            extra[f"{base}-latest"] = newest
        if base in lookup:
            continue
        if len(models) == 1:
            extra[base] = newest
        else:
            ambiguous[base] = tuple(sorted(name for _, name, _ in snapshots))
    return extra, ambiguous
