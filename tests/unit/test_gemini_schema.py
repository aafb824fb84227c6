"""The strict GenerateContentRequest schema is what its generator derives from Google's protos,
and it refuses what gateways get wrong."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.kit import KIT, SCHEMAS

SCHEMA = SCHEMAS / "gemini" / "generateContent.request.schema.json"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen", KIT / "tools" / "build_gemini_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA.read_text()) == _generator().build()


VALIDATOR = Draft202012Validator(json.loads(SCHEMA.read_text()))
TEXT = {"role": "user", "parts": [{"text": "hi"}]}


@pytest.mark.parametrize(
    "body",
    [
        {"contents": [{"role": "user", "parts": [{}]}]},  # a part with no data
        {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},  # two
        {"contents": [TEXT], "model": "gemini-2.5-flash"},  # the model is in the URL
        {"contents": [TEXT], "system_instruction": {"parts": [{"text": "x"}]}},  # snake_case
        {"contents": [TEXT], "generationConfig": {"maxTokens": 5}},  # an OpenAI name
        {"contents": [TEXT], "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
        {},  # contents is required
    ],
)
def test_refused(body: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(body))


def test_accepted() -> None:
    body = {
        "contents": [
            TEXT,
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}],
            },
        ],
        "tools": [
            {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}
        ],
        "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 0}},
    }
    assert not list(VALIDATOR.iter_errors(body))
