"""A model's capabilities: catalog defaults overridden key by key by the config.

``None`` means unknown, and unknown never refuses a request. Two keys are not abilities but
how a model family wants its OpenAI-wire body (lossless adaptation, driven by this data rather
than by model-name checks): ``token_param`` (``max_completion_tokens`` for OpenAI reasoning
models) and ``system_role`` (``developer`` instead of ``system``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

FLAGS = ("tools", "vision", "json_schema", "streaming", "system_prompt", "reasoning")
LIMITS = ("context_window", "max_output_tokens")
ADAPTATIONS = ("token_param", "system_role")


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool | None = None
    vision: bool | None = None
    json_schema: bool | None = None
    streaming: bool | None = None
    system_prompt: bool | None = None
    reasoning: bool | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    token_param: str | None = None
    system_role: str | None = None

    @classmethod
    def merged(cls, *layers: Mapping[str, Any] | None) -> Capabilities:
        """Later layers win key by key; an explicit ``null`` in a layer resets to unknown."""
        values: dict[str, Any] = {}
        for layer in layers:
            values.update({k: v for k, v in (layer or {}).items() if k in _NAMES})
        return cls(**values) if values else UNKNOWN

    def known(self) -> dict[str, Any]:
        """The capabilities that are known (for /v1/models and the CLI)."""
        return {name: getattr(self, name) for name in _NAMES if getattr(self, name) is not None}

    @property
    def adapts(self) -> bool:
        """Whether an OpenAI-wire body for this model needs rewriting."""
        return self.token_param == "max_completion_tokens" or self.system_role == "developer"


_NAMES = tuple(f.name for f in fields(Capabilities))
UNKNOWN = Capabilities()
