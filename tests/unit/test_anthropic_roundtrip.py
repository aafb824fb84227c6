"""Property: an OpenAI conversation survives OpenAI -> Anthropic -> OpenAI.

What legitimately changes is normalised away: same-role turns merge (so texts, images and
calls are compared per run of turns), system/developer messages are hoisted and joined with
newlines, assistant texts of a run are joined, empty and blank texts disappear, and a
placeholder user turn leads when the conversation would not start with one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from proxy.errors import GatewayError
from proxy.providers.anthropic.request import (
    PLACEHOLDER,
    anthropic_to_openai,
    openai_to_anthropic,
)
from tests.kit import KIT

ANTHROPIC_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/anthropic/messages.request.schema.json").read_text())
)
OPENAI_REQUEST = Draft202012Validator(
    json.loads((KIT / "schemas/openai/chat.completions.request.schema.json").read_text())
)
TOOL_NAMES = ["get_weather", "get_local_time", "search-docs", "x"]
MEDIA = ["image/jpeg", "image/png", "image/gif", "image/webp"]

words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=12
)
# Texts never end in whitespace (a final assistant prefill is right-stripped) but may be
# empty or blank, which must vanish.
texts = st.one_of(
    st.lists(words, min_size=1, max_size=5).map(" ".join), st.sampled_from(["", "   "])
)
base64ish = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    min_size=4,
    max_size=24,
).map(lambda s: s + "==")
images = st.one_of(
    st.builds(lambda m, d: f"data:{m};base64,{d}", st.sampled_from(MEDIA), base64ish),
    st.builds(lambda p: f"https://example.com/{p}.png", st.text("abcdef", min_size=1)),
).map(lambda url: {"type": "image_url", "image_url": {"url": url, "detail": "auto"}})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=3)
call_ids = st.text(alphabet="abcdefghijkABCDEFGH0123456789_", min_size=4, max_size=10).map(
    lambda s: "call_" + s
)


@st.composite
def user_messages(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"role": "user", "content": draw(texts)}
    parts = draw(
        st.lists(
            st.one_of(texts.map(lambda t: {"type": "text", "text": t}), images),
            min_size=1,
            max_size=4,
        )
    )
    return {"role": "user", "content": parts}


@st.composite
def assistant_turn(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An assistant message, and for its tool calls the tool results that answer them."""
    ids = draw(st.lists(call_ids, max_size=3, unique=True))
    content = draw(st.one_of(st.none(), texts)) if ids else draw(texts)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if ids:
        message["tool_calls"] = [
            {
                "id": i,
                "type": "function",
                "function": {
                    "name": draw(st.sampled_from(TOOL_NAMES)),
                    "arguments": json.dumps(draw(arguments)) if draw(st.booleans()) else "",
                },
            }
            for i in ids
        ]
    results = [{"role": "tool", "tool_call_id": i, "content": draw(texts)} for i in ids]
    return [message, *results]


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["user", "user", "assistant", "developer"]))
        if kind == "user":
            messages.append(draw(user_messages()))
        elif kind == "assistant":
            messages.extend(draw(assistant_turn()))
        else:
            messages.append({"role": "developer", "content": draw(texts)})
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"Tool {name}",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
        for name in draw(st.lists(st.sampled_from(TOOL_NAMES), unique=True))
    ]
    body: dict[str, Any] = {"model": "gpt-4o", "messages": messages}
    if tools:
        body["tools"] = tools
    return body


def normalise(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
    """(system text, runs): each run is one side's consecutive turns, with its texts, images,
    tool calls (id, name, parsed args) and tool results (id, text) in order."""
    system = "\n".join(
        m["content"]
        for m in messages
        if m["role"] in ("system", "developer") and m["content"].strip()
    )
    runs: list[tuple[str, dict[str, list[Any]]]] = []
    for m in messages:
        if m["role"] in ("system", "developer"):
            continue
        side = "assistant" if m["role"] == "assistant" else "user"
        items = _items(m)
        if not any(items.values()):
            continue
        if runs and runs[-1][0] == side:
            for key, values in items.items():
                runs[-1][1][key].extend(values)
        else:
            runs.append((side, items))
    return system, [
        (
            side,
            "".join(i["texts"]) if side == "assistant" else tuple(i["texts"]),
            tuple(i["images"]),
            tuple(i["calls"]),
            tuple(i["results"]),
        )
        for side, i in runs
    ]


def _items(m: dict[str, Any]) -> dict[str, list[Any]]:
    items: dict[str, list[Any]] = {"texts": [], "images": [], "calls": [], "results": []}
    content = m.get("content")
    if m["role"] == "tool":
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
        items["results"].append((m["tool_call_id"], text))
        return items
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    for part in parts:
        if part["type"] == "text" and part["text"].strip():
            items["texts"].append(part["text"])
        elif part["type"] == "image_url":
            items["images"].append(part["image_url"]["url"])
    for call in m.get("tool_calls") or []:
        args = call["function"]["arguments"]
        items["calls"].append(
            (call["id"], call["function"]["name"], json.loads(args) if args else {})
        )
    return items


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return openai_to_anthropic(
        body, upstream_model="claude-x", default_max_tokens=1024, drop_unsupported=False
    )[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_round_trip_keeps_the_conversation(body: dict[str, Any]) -> None:
    system, runs = normalise(body["messages"])
    if not system and not runs:  # nothing at all to send: the client's error
        with pytest.raises(GatewayError) as caught:
            translate(body)
        assert caught.value.param == "messages"
        return
    if not runs or runs[0][0] != "user":  # Anthropic wants a user turn first
        runs.insert(0, ("user", (PLACEHOLDER,), (), (), ()))
    anthropic = translate(body)
    ANTHROPIC_REQUEST.validate(anthropic)
    back = anthropic_to_openai(anthropic, upstream_model="gpt-4o")
    OPENAI_REQUEST.validate(back)
    assert normalise(back["messages"]) == (system, runs)
    tools = [(t["function"]["name"], t["function"]["parameters"]) for t in body.get("tools", [])]
    assert [
        (t["function"]["name"], t["function"]["parameters"]) for t in back.get("tools", [])
    ] == tools
