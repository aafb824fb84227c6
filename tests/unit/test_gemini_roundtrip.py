"""Properties of the Gemini translation (Hypothesis).

1. A unified conversation (text, data-URL images, tool calls and their results) becomes a
   Gemini request that the strict schema accepts and that says the same thing: the same texts
   and images per turn run, each call by name and arguments, each result named after its call.
2. A Gemini answer survives Gemini -> unified -> a client's next request -> Gemini: the model
   turn it becomes carries every call verbatim, ``thoughtSignature`` and Gemini's id included.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.providers.gemini import ids
from proxy.providers.gemini.request import PLACEHOLDER, unified_to_gemini
from proxy.providers.gemini.response import gemini_to_unified, split_parts
from tests.kit import assert_valid

SCHEMA = "gemini/generateContent.request.schema.json"
TOOL_NAMES = ["get_weather", "get_local_time", "search-docs", "x"]
MEDIA = ["image/jpeg", "image/png", "image/webp", "application/pdf"]

words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=12
)
texts = st.one_of(st.lists(words, min_size=1, max_size=4).map(" ".join), st.just(""))
base64ish = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    min_size=4,
    max_size=24,
).map(lambda s: s + "==")
images = st.builds(
    lambda m, d: {"type": "image_url", "image_url": {"url": f"data:{m};base64,{d}"}},
    st.sampled_from(MEDIA),
    base64ish,
)
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
def user_message(draw: st.DrawFn) -> dict[str, Any]:
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
    call_list = draw(st.lists(call_ids, max_size=3, unique=True))
    message: dict[str, Any] = {"role": "assistant", "content": draw(texts)}
    if call_list:
        message["tool_calls"] = [
            {
                "id": i,
                "type": "function",
                "function": {
                    "name": draw(st.sampled_from(TOOL_NAMES)),
                    "arguments": json.dumps(draw(arguments)),
                },
            }
            for i in call_list
        ]
    return [
        message,
        *({"role": "tool", "tool_call_id": i, "content": draw(texts)} for i in call_list),
    ]


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.sampled_from(["user", "user", "assistant"])) == "user":
            messages.append(draw(user_message()))
        else:
            messages.extend(draw(assistant_turn()))
    return {"model": "gemini-2.5-flash", "messages": messages}


def expected_runs(messages: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Each side's consecutive turns as (role, items) with empty texts left out."""
    names: dict[str, str] = {}  # a call id means the latest call made with it
    runs: list[tuple[str, list[Any]]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        side = "model" if m["role"] == "assistant" else "user"
        names.update((c["id"], c["function"]["name"]) for c in m.get("tool_calls") or [])
        items: list[Any] = []
        if m["role"] == "tool":
            items.append(("result", names[m["tool_call_id"]], m["content"]))
        else:
            content = m["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for part in parts:
                if part["type"] == "text" and part["text"]:
                    items.append(("text", part["text"]))
                elif part["type"] == "image_url":
                    items.append(("media", part["image_url"]["url"]))
            for call in m.get("tool_calls") or []:
                args = json.loads(call["function"]["arguments"])
                items.append(("call", call["function"]["name"], args))
        if not items:
            continue
        if runs and runs[-1][0] == side:
            runs[-1][1].extend(items)
        else:
            runs.append((side, items))
    return runs


def read_contents(contents: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    out = []
    for content in contents:
        items: list[Any] = []
        for part in content["parts"]:
            if "text" in part:
                items.append(("text", part["text"]))
            elif "inlineData" in part:
                blob = part["inlineData"]
                items.append(("media", f"data:{blob['mimeType']};base64,{blob['data']}"))
            elif "functionCall" in part:
                call = part["functionCall"]
                items.append(("call", call["name"], call["args"]))
            elif "functionResponse" in part:
                answer = part["functionResponse"]
                items.append(("result", answer["name"], answer["response"]["output"]))
        out.append((content["role"], items))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_a_conversation_says_the_same_in_gemini(body: dict[str, Any]) -> None:
    gemini, dropped = unified_to_gemini(body)
    assert dropped == []
    assert_valid(SCHEMA, gemini)
    runs = expected_runs(body["messages"]) or [("user", [("text", PLACEHOLDER)])]
    assert read_contents(gemini["contents"]) == runs
    system = [m["content"] for m in body["messages"] if m["role"] == "system" and m["content"]]
    assert [p["text"] for p in gemini.get("systemInstruction", {}).get("parts", [])] == system


signatures = st.one_of(
    st.binary(min_size=1, max_size=64).map(lambda b: base64.b64encode(b).decode()),  # Google's
    st.binary(min_size=1, max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.text(min_size=1, max_size=24),  # any other string still comes back verbatim
)
gemini_ids = st.one_of(st.none(), st.text(alphabet="abcdefXYZ0123456789-", min_size=1, max_size=12))


@st.composite
def model_parts(draw: st.DrawFn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if draw(st.booleans()):
        parts.append({"text": draw(words)})
    count = draw(st.integers(0 if parts else 1, 3))
    given_ids = draw(st.lists(gemini_ids, min_size=count, max_size=count))  # unique, as Gemini's
    for number, gemini_id in enumerate(given_ids):
        call: dict[str, Any] = {"name": draw(st.sampled_from(TOOL_NAMES)), "args": draw(arguments)}
        if gemini_id:
            call["id"] = f"{gemini_id}{number}"
        part: dict[str, Any] = {"functionCall": call}
        if draw(st.booleans()):
            part["thoughtSignature"] = draw(signatures)
        parts.append(part)
    return parts


@settings(max_examples=150, deadline=None)
@given(model_parts(), st.text(min_size=1, max_size=20))
def test_model_parts_come_back_verbatim_through_a_client(
    parts: list[dict[str, Any]], rid: str
) -> None:
    response = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "responseId": rid,
    }
    message = gemini_to_unified(response, created=0)["choices"][0]["message"]
    for call in message.get("tool_calls") or []:  # what Anthropic's tool_use ids allow
        assert all(c.isalnum() or c in "_-" for c in call["id"]), call["id"]
    results = [
        {"role": "tool", "tool_call_id": call["id"], "content": "ok"}
        for call in message.get("tool_calls") or []
    ]
    request = {"messages": [{"role": "user", "content": "hi"}, message, *results]}
    gemini, _ = unified_to_gemini(request)
    assert_valid(SCHEMA, gemini)
    assert gemini["contents"][1] == {"role": "model", "parts": parts}
    if results:
        answers = [p["functionResponse"] for p in gemini["contents"][2]["parts"]]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        assert [(a["name"], a.get("id")) for a in answers] == [
            (c["name"], c.get("id")) for c in calls
        ]
    without_ids, _ = unified_to_gemini(request, send_ids=False)  # Vertex v1
    bodies = [
        part.get("functionCall") or part.get("functionResponse") or {}
        for content in without_ids["contents"]
        for part in content["parts"]
    ]
    assert not any("id" in body for body in bodies)


@given(gemini_ids, st.one_of(st.none(), signatures), st.text(max_size=8), st.integers(0, 99))
def test_ids_decode_what_they_encode(
    gemini_id: str | None, signature: str | None, response_id: str, index: int
) -> None:
    call: dict[str, Any] = {"name": "f", "args": {}}
    if gemini_id:
        call["id"] = gemini_id
    part: dict[str, Any] = {"functionCall": call}
    if signature:
        part["thoughtSignature"] = signature
    _text, calls, _stem = split_parts([part], (response_id, 0), index)
    call_id = calls[0]["id"]
    assert all((c.isalnum() and c.isascii()) or c in "_-" for c in call_id), call_id
    ref = ids.decode(call_id)
    assert (ref.gemini_id, ref.signature) == (gemini_id, signature)
    assert ids.decode(call_id) == ids.decode(call_id)


@given(st.one_of(st.none(), gemini_ids), signatures)
def test_ids_of_earlier_releases_still_give_their_signature(
    gemini_id: str | None, signature: str
) -> None:
    """Before the ``__tb_`` form every signature rode as ``__ts_`` + base64url of its UTF-8: a
    client holding such an id across an upgrade still gets its signature back."""
    base = f"gid_{gemini_id}" if gemini_id else "call_0123456789abcdef01234567"
    packed = base64.urlsafe_b64encode(signature.encode()).rstrip(b"=").decode()
    ref = ids.decode(f"{base}__ts_{packed}")
    assert (ref.gemini_id, ref.signature) == (gemini_id, signature)
