"""Tool-call ids longer than OpenAI accepts are shortened for OpenAI-wire upstreams only."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.engine.dialects import ANTHROPIC, OPENAI, upstream_body
from proxy.providers.gemini import ids
from proxy.providers.openai_ids import MAX_ID, fit_tool_call_ids, short_id
from proxy.providers.registry import vendor_for

SIGNATURE = "CikBcsjafFK168IbtVtoxVV0Tsn8O+eU45rzJahzwuKGmMbdMdfpmNpgBwplAXLI2nyA"
LONG = "call_qpc2afWVFJK4vr0Pq6WiyAU_0_0" + ids.pack(SIGNATURE)  # what Gemini 3 answers get
SHORT = "call_abc123"


def conversation(call_id: str) -> list[dict[str, Any]]:
    function = {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": function}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "14C"},
    ]


def target(vendor: str, model: str) -> Any:
    class Target:
        upstream_model = model

    Target.vendor = vendor_for(vendor)  # type: ignore[attr-defined]
    return Target()


def test_ids_that_fit_leave_the_messages_alone() -> None:
    assert fit_tool_call_ids(conversation(SHORT)) is None
    assert fit_tool_call_ids(conversation("x" * MAX_ID)) is None
    assert fit_tool_call_ids(None) is None


def test_a_long_id_is_shortened_the_same_in_the_call_and_its_result() -> None:
    messages = conversation(LONG)
    assert len(LONG) > MAX_ID
    fitted = fit_tool_call_ids(messages)
    assert fitted is not None
    new_id = fitted[1]["tool_calls"][0]["id"]
    assert new_id == fitted[2]["tool_call_id"] == short_id(LONG)
    assert len(new_id) <= MAX_ID and new_id.startswith("call_")
    assert fitted[0] is messages[0]  # untouched messages are not copied
    assert messages[1]["tool_calls"][0]["id"] == LONG  # the client's own body is not changed
    assert fitted[1]["tool_calls"][0]["function"] == messages[1]["tool_calls"][0]["function"]


@given(st.text(min_size=MAX_ID + 1, max_size=300), st.text(min_size=MAX_ID + 1, max_size=300))
def test_short_ids_are_stable_distinct_and_short(first: str, second: str) -> None:
    assert short_id(first) == short_id(first)
    assert len(short_id(first)) <= MAX_ID
    assert set(short_id(first)[5:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    if first != second:
        assert short_id(first) != short_id(second)


def test_the_openai_pass_through_shortens_and_keeps_its_bytes_otherwise() -> None:
    body = {"model": "gpt-4o", "messages": conversation(LONG)}
    sent, _ = upstream_body(OPENAI, body, orjson.dumps(body), target("openai", "gpt-4o"))
    out = orjson.loads(sent)
    assert out["messages"][1]["tool_calls"][0]["id"] == short_id(LONG)
    assert out["messages"][2]["tool_call_id"] == short_id(LONG)
    fine = {"model": "gpt-4o", "messages": conversation(SHORT)}
    raw = orjson.dumps(fine)
    assert upstream_body(OPENAI, fine, raw, target("openai", "gpt-4o"))[0] is raw


def test_an_anthropic_client_reaching_openai_gets_short_ids_too() -> None:
    use = {"type": "tool_use", "id": LONG, "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": LONG, "content": "14C"}
    body = {
        "model": "gpt-4o",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ],
    }
    sent, _ = upstream_body(ANTHROPIC, body, orjson.dumps(body), target("openai", "gpt-4o"))
    messages = orjson.loads(sent)["messages"]
    assert messages[1]["tool_calls"][0]["id"] == short_id(LONG)
    assert messages[2]["tool_call_id"] == short_id(LONG)


def test_other_wires_keep_the_long_ids() -> None:
    use = {"type": "tool_use", "id": LONG, "name": "get_weather", "input": {"city": "Paris"}}
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "assistant", "content": [use]}]}
    raw = orjson.dumps(body)
    assert upstream_body(ANTHROPIC, body, raw, target("anthropic", "c"))[0] is raw
