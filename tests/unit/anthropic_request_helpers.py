"""Shared parts of the request-translation tests: the kit's samples and checked translations.

Every OpenAI -> Anthropic translation is validated against the kit's request schema here, so
no test can pass on a body Anthropic would refuse.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from proxy.errors import ErrorType, GatewayError
from proxy.providers.anthropic.request import openai_to_anthropic
from tests.kit import KIT

ANTHROPIC_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/messages.request.schema.json").read_text())
)
MODEL = "claude-sonnet-4-5-20250929"


def sample(path: str) -> dict[str, Any]:
    return json.loads((KIT / "samples" / path).read_text())


def to_anthropic(body: dict[str, Any], drop: bool = False) -> tuple[dict[str, Any], list[str]]:
    out, dropped = openai_to_anthropic(
        body, upstream_model=MODEL, default_max_tokens=4096, drop_unsupported=drop
    )
    ANTHROPIC_REQUEST.validate(out)
    return out, dropped


def chat(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **params}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def rejected(body: dict[str, Any], drop: bool = False) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        to_anthropic(body, drop)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert caught.value.status == 400
    return caught.value
