"""Properties of the Cohere translators, over generated conversations and responses.

1. unified -> Cohere keeps every text, image, tool call and tool result (and validates against
   the schema derived from Cohere's OpenAPI description);
2. a Cohere answer -> unified -> the next request's assistant turn -> Cohere gives back the
   same plan and tool calls (Cohere asks for its ``tool_plan`` to come back);
3. a response streamed as Cohere events, translated chunk by chunk, adds up to the
   non-streaming translation of the same response.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from proxy.providers.cohere.request import to_cohere
from proxy.providers.cohere.response import to_unified
from proxy.providers.cohere.stream import CohereToUnifiedStream
from proxy.sim.faults import kit_dir
from proxy.sim.text import split_chunks

JSON = dict[str, Any]
SCHEMAS = kit_dir() / "schemas" / "cohere"
REQUEST = Draft202012Validator(orjson.loads((SCHEMAS / "chat.v2.request.schema.json").read_bytes()))
RESPONSE = Draft202012Validator(
    orjson.loads((SCHEMAS / "chat.v2.response.schema.json").read_bytes())
)
EVENT = Draft202012Validator(
    orjson.loads((SCHEMAS / "chat.v2.stream-event.schema.json").read_bytes())
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
ids = st.text("abcdefghijklmnop0123456789_", min_size=1, max_size=16)
arguments = st.dictionaries(
    st.text(min_size=1, max_size=6), st.integers(-1000, 1000) | st.text(max_size=6), max_size=3
).map(lambda d: orjson.dumps(d).decode())
calls = st.lists(
    st.builds(
        lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
        ids,
        names,
        arguments,
    ),
    min_size=1,
    max_size=3,
)
images = st.builds(
    lambda p: {"type": "image_url", "image_url": {"url": f"https://example.com/{p}.png"}},
    st.text("abcdef", min_size=1, max_size=6),
)
user_content = st.one_of(
    texts, st.lists(st.one_of(texts.map(lambda t: {"type": "text", "text": t}), images), min_size=1)
)


@st.composite
def conversations(draw: st.DrawFn) -> list[JSON]:
    out: list[JSON] = []
    if draw(st.booleans()):
        out.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(texts)})
    for _ in range(draw(st.integers(1, 4))):
        out.append({"role": "user", "content": draw(user_content)})
        made = draw(st.one_of(st.none(), calls))
        plan = draw(st.one_of(st.none(), texts))
        if made is None:
            out.append({"role": "assistant", "content": plan or "ok"})
            continue
        out.append({"role": "assistant", "content": plan, "tool_calls": made})
        out += [
            {"role": "tool", "tool_call_id": call["id"], "content": draw(texts)} for call in made
        ]
    return out


@SETTINGS
@given(conversations())
def test_unified_to_cohere_keeps_every_text_image_call_and_result(messages: list[JSON]) -> None:
    out, dropped = to_cohere(
        {"model": "m", "messages": messages}, upstream_model="c", drop_unsupported=False
    )
    assert dropped == [] and not list(REQUEST.iter_errors(out))
    sent = out["messages"]
    assert len(sent) == len(messages)
    for original, cohere in zip(messages, sent, strict=True):
        role = "system" if original["role"] == "developer" else original["role"]
        assert cohere["role"] == role
        if role == "assistant" and original.get("tool_calls"):
            assert cohere["tool_calls"] == original["tool_calls"]
            assert cohere.get("tool_plan") == original["content"]
            assert "content" not in cohere
        elif role == "tool":
            assert cohere["tool_call_id"] == original["tool_call_id"]
            assert cohere["content"] == original["content"]
        else:
            assert cohere["content"] == original["content"]


@st.composite
def cohere_responses(draw: st.DrawFn) -> JSON:
    message: JSON = {"role": "assistant"}
    made = draw(st.one_of(st.none(), calls))
    if made:
        if draw(st.booleans()):
            message["tool_plan"] = draw(texts)
        message["tool_calls"] = made
        reason = "TOOL_CALL"
    else:
        message["content"] = [{"type": "text", "text": draw(texts)}]
        reason = draw(st.sampled_from(["COMPLETE", "STOP_SEQUENCE", "MAX_TOKENS"]))
    counts = st.integers(0, 9999)
    billed = {"input_tokens": draw(counts), "output_tokens": draw(counts)}
    tokens = {k: v + 100 for k, v in billed.items()}
    response = {
        "id": draw(ids),
        "message": message,
        "finish_reason": reason,
        "usage": {"billed_units": billed, "tokens": tokens, "cached_tokens": 0},
    }
    assert not list(RESPONSE.iter_errors(response))
    return response


@SETTINGS
@given(cohere_responses())
def test_plan_and_calls_come_back_to_cohere_unchanged(response: JSON) -> None:
    reply = to_unified(response, created=1)["choices"][0]["message"]
    assistant = {k: reply[k] for k in ("role", "content", "tool_calls") if k in reply}
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}, assistant]}
    out, _ = to_cohere(body, upstream_model="c", drop_unsupported=False)
    back = out["messages"][1]
    original = response["message"]
    if original.get("tool_calls"):
        assert back["tool_calls"] == original["tool_calls"]
        assert back.get("tool_plan") == original.get("tool_plan")
    else:
        assert back["content"] == original["content"][0]["text"]


def ev(kind: str, message: JSON | None = None, index: int | None = None) -> JSON:
    """One Cohere stream event payload."""
    out: JSON = {"type": kind}
    if index is not None:
        out["index"] = index
    if message is not None:
        out["delta"] = {"message": message}
    return out


def events(response: JSON, n: int) -> list[JSON]:
    """``response`` as Cohere's stream events (usage as floats, as Cohere streams it)."""
    message = response["message"]
    out = [{**ev("message-start", {"role": "assistant"}), "id": response["id"]}]
    for piece in split_chunks(message.get("tool_plan") or "", n):
        out.append(ev("tool-plan-delta", {"tool_plan": piece}))
    for i, call in enumerate(message.get("tool_calls") or ()):
        opener = {**call, "function": {**call["function"], "arguments": ""}}
        out.append(ev("tool-call-start", {"tool_calls": opener}, i))
        for piece in split_chunks(call["function"]["arguments"], n):
            out.append(ev("tool-call-delta", {"tool_calls": {"function": {"arguments": piece}}}, i))
        out.append(ev("tool-call-end", index=i))
    for item in message.get("content") or ():
        out.append(ev("content-start", {"content": {"type": "text", "text": ""}}, 0))
        for piece in split_chunks(item["text"], n):
            out.append(ev("content-delta", {"content": {"text": piece}}, 0))
        out.append(ev("content-end", index=0))
    billed = {k: float(v) for k, v in response["usage"]["billed_units"].items()}
    end = {"finish_reason": response["finish_reason"], "usage": {"billed_units": billed}}
    out.append({"type": "message-end", "delta": end})
    return out


@SETTINGS
@given(cohere_responses(), st.integers(1, 6))
def test_a_stream_adds_up_to_the_non_streaming_translation(response: JSON, n: int) -> None:
    translator = CohereToUnifiedStream(created=1)
    chunks: list[JSON] = []
    for event in events(response, n):
        assert not list(EVENT.iter_errors(event))
        chunks += [chunk for _, chunk in translator.feed(event["type"], event)]
    assert translator.done
    expected = to_unified(response, created=1)
    content, calls, finish = "", {}, None
    for chunk in chunks[:-1]:
        choice = chunk["choices"][0]
        content += choice["delta"].get("content") or ""
        finish = choice["finish_reason"] or finish
        for call in choice["delta"].get("tool_calls") or ():
            slot = calls.setdefault(call["index"], {"id": call.get("id"), "name": "", "args": ""})
            slot["name"] += call.get("function", {}).get("name") or ""
            slot["args"] += call.get("function", {}).get("arguments") or ""
    message = expected["choices"][0]["message"]
    assert content == (message["content"] or "")
    assert finish == expected["choices"][0]["finish_reason"]
    assert [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["args"]}}
        for _, c in sorted(calls.items())
    ] == message.get("tool_calls", [])
    assert chunks[-1]["usage"] == expected["usage"] and chunks[-1]["choices"] == []
