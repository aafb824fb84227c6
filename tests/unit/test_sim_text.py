"""The simulator's pure model: tokens, chunks, replies, truncation, tool arguments and choice.

No server here; these are the rules every simulated response is built from.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.sim import anthropic as sim_anthropic
from proxy.sim import openai as sim_openai
from proxy.sim import text
from proxy.sim.text import Prompt, Tool, ToolChoice
from tests.kit import SCHEMAS
from tests.unit.sim_helpers import WEATHER

# --- the model (pure) --------------------------------------------------------------------------


def test_tokenizer_and_chunks() -> None:
    assert text.count_tokens("Hello, world! It's 3pm.") == 9
    assert text.count_tokens("") == 0
    for n in (1, 2, 3, 7, 50, 1000):
        pieces = text.split_chunks("The quick brown fox.", n)
        assert "".join(pieces) == "The quick brown fox." and all(pieces)
        assert len(pieces) == min(n, 20)
    assert text.split_chunks("", 5) == []


def test_reply_is_deterministic_echoes_and_obeys_say() -> None:
    first = text.reply_text("What is the weather in Paris today please")
    assert first == text.reply_text("What is the weather in Paris today please")
    assert first.startswith("You said: What is the weather in Paris. ")
    assert first != text.reply_text("Something else entirely")
    assert text.reply_text("Please say: exactly this") == "exactly this"


def test_truncation_counts_exactly_and_stops_cut() -> None:
    cut, truncated = text.truncate_tokens("one, two three. four", 3)
    assert (cut, truncated) == ("one, two", True)
    assert text.count_tokens(cut) == 3
    assert text.truncate_tokens("one two", 5) == ("one two", False)
    assert text.apply_stop("alpha beta gamma", ["gamma", "beta"]) == ("alpha ", "beta")


def test_tool_arguments_follow_the_schema() -> None:
    assert text.arguments_for(WEATHER["parameters"]) == {
        "location": "sim",
        "unit": "celsius",
        "days": 1,
    }
    nested = {
        "type": "object",
        "required": ["o", "b", "n"],
        "properties": {
            "o": {"type": "object"},
            "b": {"type": "boolean"},
            "n": {"type": ["null", "number"]},
        },
    }
    assert text.arguments_for(nested) == {"o": {}, "b": True, "n": 1}


def test_tool_choice_rules() -> None:
    tools = [Tool("a", {}), Tool("b", {})]
    user = Prompt(last_user_text="do it in parallel")
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice())] == ["a", "b"]
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice(parallel=False))] == ["a"]
    assert [t.name for t in text.choose_tools(user, tools, ToolChoice("named", "b"))] == ["b"]
    assert text.choose_tools(user, tools, ToolChoice("none")) == []
    after = Prompt(last_role="tool", tool_results=("sunny",))
    assert text.choose_tools(after, tools, ToolChoice("any")) == []
    assert "sunny" in text.respond(after, tools).text


def test_request_field_lists_match_the_kit_schemas() -> None:
    oa = orjson.loads((SCHEMAS / "openai/chat.completions.request.schema.json").read_bytes())

    def keys(node: dict[str, Any]) -> set[str]:
        if "$ref" in node:
            return keys(oa["$defs"][node["$ref"].rsplit("/", 1)[1]])
        return set(node.get("properties", {})).union(*(keys(n) for n in node.get("allOf", [])))

    assert keys(oa) == sim_openai.REQUEST_FIELDS
    an = orjson.loads((SCHEMAS / "anthropic/messages.request.schema.json").read_bytes())
    assert set(an["properties"]) == sim_anthropic.REQUEST_FIELDS
