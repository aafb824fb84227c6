"""The response cache (memory backend) through the official SDKs in both dialects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest
import yaml

from proxy.config.build import load_snapshot
from proxy.sim.faults import Fault
from proxy.sse import iter_events
from tests.conftest import ENVIRON, wait_until
from tests.http import get, post
from tests.prom import samples
from tests.sdk import openai_client

CACHED = {"cache": {"enabled": True}}
CLAUDE = "claude-3-5-sonnet-20241022"
NO_RETRY = {"retry": {"max_retries": 0}}


def ask(gateway: Any, text: str, model: str = "gpt-4o", **extra: Any) -> Any:
    return gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **extra
    )


def ask_anthropic(
    gateway: Any, text: str, model: str = CLAUDE, max_tokens: int = 200, **extra: Any
) -> Any:
    return gateway.anthropic().messages.with_raw_response.create(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": text}], **extra
    )


def test_openai_miss_then_hit_without_upstream_call(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    first = ask(gateway, "What is a sidecar?")
    second = ask(gateway, "What is a sidecar?")
    assert len(sim.completions()) == 1
    assert first.headers["x-llm-cache"] == "miss" and first.headers["x-llm-attempts"] == "1"
    assert second.headers["x-llm-cache"] == "hit" and second.headers["x-llm-attempts"] == "0"
    assert second.headers["x-llm-cost-usd"] == "0"
    assert second.headers["x-llm-cost-saved-usd"] == first.headers["x-llm-cost-usd"] != "0"
    for name in ("x-llm-provider", "x-llm-model", "x-llm-input-tokens", "x-llm-output-tokens"):
        assert second.headers[name] == first.headers[name]
    one, two = first.parse(), second.parse()
    assert two.choices[0].message.content == one.choices[0].message.content
    assert two.choices[0].finish_reason == one.choices[0].finish_reason
    assert two.usage.prompt_tokens == one.usage.prompt_tokens
    assert two.usage.completion_tokens == one.usage.completion_tokens
    assert two.usage.model_extra["cost"] == 0 and one.usage.model_extra["cost"] > 0


def test_anthropic_hit_and_cross_dialect_hit(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    first = ask_anthropic(gateway, "Name a river.")
    again = ask_anthropic(gateway, "Name a river.")
    # The same request in the other dialect is equal after translation: the same answer.
    other = ask(gateway, "Name a river.", model=CLAUDE, max_tokens=200)
    assert len(sim.completions()) == 1
    assert [r.headers["x-llm-cache"] for r in (first, again, other)] == ["miss", "hit", "hit"]
    original, replayed = first.parse(), again.parse()
    assert replayed.content[0].text == original.content[0].text
    assert replayed.stop_reason == original.stop_reason
    assert replayed.usage.output_tokens == original.usage.output_tokens
    assert replayed.usage.model_extra["cost"] == 0
    assert other.parse().choices[0].message.content == original.content[0].text
    assert other.headers["x-llm-provider"] == "anthropic" and other.headers["x-llm-model"] == CLAUDE


def test_tool_calls_replay_in_both_dialects(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    kwargs = {"tools": [tool], "max_tokens": 300}
    first = ask(gateway, "Weather in Oslo?", model=CLAUDE, **kwargs).parse()
    hit = ask(gateway, "Weather in Oslo?", model=CLAUDE, stream=True, **kwargs)
    assert hit.headers["x-llm-cache"] == "hit"
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in hit.parse():
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                got = calls.setdefault(call.index, {"name": "", "arguments": ""})
                got["name"] += call.function.name or ""
                got["arguments"] += call.function.arguments or ""
    expected = first.choices[0].message.tool_calls
    assert finish == first.choices[0].finish_reason == "tool_calls"
    assert [c["name"] for c in calls.values()] == [c.function.name for c in expected]
    assert [c["arguments"] for c in calls.values()] == [c.function.arguments for c in expected]
    assert len(sim.completions()) == 1


def sse_events(reply: Any) -> list[tuple[str | None, Any]]:
    return [
        (e.name, e.data if e.data == b"[DONE]" else orjson.loads(e.data))
        for e in iter_events(reply.content)
    ]


def test_openai_stream_replayed_from_a_whole_answer_byte_valid(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    first = ask(gateway, "Stream it back.")
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Stream it back."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = post(f"{gateway.url}/v1/chat/completions", orjson.dumps(body))
    assert reply.status_code == 200 and reply.headers["x-llm-cache"] == "hit"
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.content.endswith(b"data: [DONE]\n\n")
    events = sse_events(reply)
    chunks = [data for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    original = first.parse()
    assert text == original.choices[0].message.content
    usage = chunks[-1]["usage"]
    assert usage["cost"] == 0 and usage["completion_tokens"] == original.usage.completion_tokens
    assert len(sim.completions()) == 1


def test_anthropic_stream_stored_then_replayed_as_stream_and_whole(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    client = gateway.anthropic()
    messages = [{"role": "user", "content": "Tell me a story."}]
    with client.messages.stream(model="gpt-4o-mini", max_tokens=300, messages=messages) as live:
        original = live.get_final_message()
    body = {"model": "gpt-4o-mini", "max_tokens": 300, "messages": messages, "stream": True}
    reply = post(f"{gateway.url}/v1/messages", orjson.dumps(body))
    assert reply.headers["x-llm-cache"] == "hit" and reply.headers["x-llm-attempts"] == "0"
    events = sse_events(reply)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    delta = next(data for name, data in events if name == "message_delta")
    assert delta["usage"]["cost"] == 0
    assert delta["usage"]["output_tokens"] == original.usage.output_tokens
    with client.messages.stream(model="gpt-4o-mini", max_tokens=300, messages=messages) as again:
        replayed = again.get_final_message()
    assert replayed.content[0].text == original.content[0].text
    whole = ask_anthropic(gateway, "Tell me a story.", model="gpt-4o-mini", max_tokens=300)
    assert whole.headers["x-llm-cache"] == "hit"
    assert whole.parse().content[0].text == original.content[0].text
    assert len(sim.completions()) == 1


def test_no_cache_skips_lookup_but_stores_and_no_store_does_neither(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    no_cache = {"extra_headers": {"cache-control": "no-cache"}}
    no_store = {"extra_headers": {"cache-control": "no-store"}}
    assert ask(gateway, "one", **no_cache).headers["x-llm-cache"] == "bypass"
    assert ask(gateway, "one").headers["x-llm-cache"] == "hit"  # stored by the bypass
    assert ask(gateway, "one", **no_cache).headers["x-llm-cache"] == "bypass"
    assert len(sim.completions()) == 2
    assert ask(gateway, "two", **no_store).headers["x-llm-cache"] == "bypass"
    assert ask(gateway, "two").headers["x-llm-cache"] == "miss"  # nothing was stored
    assert ask_anthropic(gateway, "three", **no_store).headers["x-llm-cache"] == "bypass"
    assert ask_anthropic(gateway, "three").headers["x-llm-cache"] == "miss"
    assert len(sim.completions()) == 6


def test_errors_and_cut_streams_are_not_cached(gateway_factory, sim):
    gateway = gateway_factory({**CACHED, **NO_RETRY})
    sim.sim.faults.push(Fault(kind="status", status=500))
    with pytest.raises(openai.InternalServerError):
        ask(gateway, "fragile")
    assert ask(gateway, "fragile").headers["x-llm-cache"] == "miss"
    sim.sim.faults.push(Fault(kind="stream_cut", after_events=3))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "cut"}], "stream": True}
    cut = post(f"{gateway.url}/v1/chat/completions", orjson.dumps(body))
    assert b'"error"' in cut.content and cut.headers["x-llm-cache"] == "miss"
    sim.sim.faults.push(Fault(kind="stream_error", after_events=3))
    failed = post(f"{gateway.url}/v1/chat/completions", orjson.dumps(body))
    assert b'"error"' in failed.content
    assert ask(gateway, "cut").headers["x-llm-cache"] == "miss"
    assert ask(gateway, "cut").headers["x-llm-cache"] == "hit"
    assert len(sim.completions()) == 5


TOKENS = {"EDGE_TOKEN_A": "tok-a-5f1e9c", "EDGE_TOKEN_B": "tok-b-77d2a0"}


def test_two_inbound_tokens_never_share_entries(gateway_factory, sim):
    auth = {"server": {"auth": {"tokens_env": list(TOKENS)}}}
    gateway = gateway_factory({**CACHED, **auth}, environ=TOKENS)

    def client(token: str) -> Any:
        return openai_client(f"{gateway.url}/v1", token)

    def status(token: str) -> str:
        raw = client(token).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "mine only"}]
        )
        return raw.headers["x-llm-cache"]

    a, b = TOKENS["EDGE_TOKEN_A"], TOKENS["EDGE_TOKEN_B"]
    assert [status(a), status(b), status(a), status(b)] == ["miss", "miss", "hit", "hit"]
    assert len(sim.completions()) == 2


def test_ttl_expiry(gateway_factory, sim):
    gateway = gateway_factory({"cache": {"enabled": True, "ttl_s": 0.5}})
    assert ask(gateway, "short-lived").headers["x-llm-cache"] == "miss"
    # Expiry is the only way back to a miss; every hit until then costs no upstream call.
    wait_until(lambda: ask(gateway, "short-lived").headers["x-llm-cache"] == "miss", 10, 0.05)
    assert len(sim.completions()) == 2


def test_memory_bound_respected_lru_under_distinct_requests(gateway_factory, sim):
    max_bytes = 24_000
    gateway = gateway_factory({"cache": {"enabled": True, "max_bytes": max_bytes}})
    stats = gateway.state.cache.stats
    ask(gateway, "keep me warm")
    for i in range(40):
        assert ask(gateway, f"distinct request number {i}").headers["x-llm-cache"] == "miss"
        assert 0 < stats.memory_bytes <= max_bytes
        assert ask(gateway, "keep me warm").headers["x-llm-cache"] == "hit"  # recently used
    assert stats.evictions["lru"] > 0 and stats.memory_entries < 41
    assert ask(gateway, "distinct request number 39").headers["x-llm-cache"] == "hit"
    assert ask(gateway, "distinct request number 0").headers["x-llm-cache"] == "miss"
    metrics = samples(get(f"{gateway.url}/metrics").text)
    assert metrics[("llm_edge_cache_memory_bytes", frozenset())] == stats.memory_bytes
    assert metrics[("llm_edge_cache_evictions_total", frozenset({("reason", "lru")}))] > 0


def test_header_absent_for_models_the_cache_does_not_apply_to(gateway_factory, sim):
    overrides = {"models": {"gpt-4o-mini": {"cache": {"enabled": True, "ttl_s": 60}}}}
    gateway = gateway_factory(overrides)
    assert "x-llm-cache" not in ask(gateway, "plain").headers
    assert ask(gateway, "plain", model="gpt-4o-mini").headers["x-llm-cache"] == "miss"
    assert ask(gateway, "plain", model="gpt-4o-mini").headers["x-llm-cache"] == "hit"
    off = gateway_factory(
        {"cache": {"enabled": True}, "models": {"gpt-4o": {"cache": {"enabled": False}}}}
    )
    assert "x-llm-cache" not in ask(off, "plain").headers


def test_metrics_and_access_log_count_hits_and_cost_saved(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    first = ask(gateway, "count me")
    ask(gateway, "count me")
    ask(gateway, "count me")
    ask(gateway, "count me", extra_headers={"cache-control": "no-cache"})
    metrics = wait_until(
        lambda: (
            (m := samples(get(f"{gateway.url}/metrics").text))
            and m.get(
                (
                    "llm_edge_cache_requests_total",
                    frozenset({("model", "gpt-4o"), ("result", "bypass")}),
                )
            )
            and m
        )
    )

    def lookups(result: str) -> float:
        return metrics[
            ("llm_edge_cache_requests_total", frozenset({("model", "gpt-4o"), ("result", result)}))
        ]

    assert (lookups("miss"), lookups("hit"), lookups("bypass")) == (1, 2, 1)
    saved = metrics[
        (
            "llm_edge_cache_cost_saved_usd_total",
            frozenset({("model", "gpt-4o"), ("provider", "openai")}),
        )
    ]
    assert Decimal(repr(saved)) == 2 * Decimal(first.headers["x-llm-cost-usd"])
    assert metrics[("llm_edge_cache_stores_total", frozenset())] == 2  # the miss, the bypass


def test_reload_keeps_entries_unless_the_model_is_rerouted(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    ask(gateway, "survive")
    ask(gateway, "survive", model="gpt-4o-mini")
    data = yaml.safe_load(gateway.config_path.read_text())
    data["models"]["gpt-4o-mini"]["upstream_model"] = "gpt-4o-mini-2024-07-18"
    data["retry"]["max_retries"] = 1  # an unrelated change
    gateway.config_path.write_text(yaml.safe_dump(data))
    snapshot = load_snapshot(gateway.config_path, environ=ENVIRON)

    async def swap() -> None:
        gateway.state.swap(snapshot)

    gateway.server.call(swap)
    assert gateway.state.cache.stats.evictions.get("reload") == 1
    assert ask(gateway, "survive").headers["x-llm-cache"] == "hit"
    rerouted = ask(gateway, "survive", model="gpt-4o-mini")
    assert rerouted.headers["x-llm-cache"] == "miss"
    assert rerouted.headers["x-llm-model"] == "gpt-4o-mini-2024-07-18"


def test_responses_dialect_translated_is_cached_native_pass_through_is_not(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    client = gateway.openai()

    def create(model: str, **extra: Any) -> Any:
        return client.responses.with_raw_response.create(
            model=model, input="Say something cached.", max_output_tokens=200, **extra
        )

    first, again = create(CLAUDE), create(CLAUDE)
    assert [first.headers["x-llm-cache"], again.headers["x-llm-cache"]] == ["miss", "hit"]
    assert again.parse().output_text == first.parse().output_text
    assert again.parse().usage.model_extra["cost"] == 0
    streamed = create(CLAUDE, stream=True)
    assert streamed.headers["x-llm-cache"] == "hit"
    events = list(streamed.parse())
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == first.parse().output_text
    assert len(sim.completions()) == 1
    native = create("gpt-4o")  # passed through to OpenAI's own Responses API: not cached
    assert "x-llm-cache" not in native.headers


def test_a_third_vendor_wire_stream_is_stored_and_replayed_in_both_dialects(gateway_factory, sim):
    gateway = gateway_factory(CACHED)
    model = "command-a-03-2025"  # Cohere: its own wire, translated through the unified format
    stream = gateway.openai().chat.completions.create(
        model=model, max_tokens=200, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Cohere, cached."}],
    )  # fmt: skip
    chunks = list(stream)
    live = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert live and chunks[-1].usage.model_extra["cost"] > 0
    whole = ask(gateway, "Cohere, cached.", model=model, max_tokens=200)
    assert whole.headers["x-llm-cache"] == "hit" and whole.headers["x-llm-provider"] == "cohere"
    assert whole.parse().choices[0].message.content == live
    other = ask_anthropic(gateway, "Cohere, cached.", model=model)
    assert other.headers["x-llm-cache"] == "hit"
    assert other.parse().content[0].text == live
    assert len(sim.completions()) == 1
