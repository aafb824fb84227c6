"""The response cache's pure parts: keys, entries, the memory backend, capture and replay."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from proxy.config.build import build_snapshot, load_snapshot
from proxy.config.loader import ConfigError
from proxy.engine.cache import key as keys
from proxy.engine.cache import replay
from proxy.engine.cache.capture import StreamCapture
from proxy.engine.cache.entry import Answer, storable
from proxy.engine.cache.memory import MemoryStore
from proxy.engine.cache.stats import CacheStats
from proxy.engine.route import resolve
from proxy.engine.state import RequestRecord
from proxy.logs import access_fields, text_line
from proxy.resources import schema_path
from proxy.sse import iter_events
from tests.kit import sample, sample_bytes

DATA: dict[str, Any] = {
    "providers": {
        "openai": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
        "anthropic": {"type": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "k"},
    },
    "models": {
        "gpt-4o": {"provider": "openai", "price": {"input_per_1k": 1, "output_per_1k": 2}},
        "claude": {
            "provider": "anthropic",
            "upstream_model": "claude-3-5-sonnet-20241022",
            "price": {"input_per_1k": 1, "output_per_1k": 2},
        },
    },
    "cache": {"enabled": True},
}


def snapshot(data: dict[str, Any] = DATA) -> Any:
    return build_snapshot(data, source="test", raw=orjson.dumps(data), warnings=[])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- keys ----------------------------------------------------------------------------------


def test_key_ignores_order_whitespace_and_stream_fields():
    target = resolve(snapshot(), "gpt-4o")
    one = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    two = {"temperature": 0, "stream": True, "stream_options": {"include_usage": True}, **one}
    bodies = [keys.canonical("openai", b, target) for b in (one, two)]
    assert bodies[0] == bodies[1]
    assert b"hi" in bodies[0] and b"stream" not in bodies[0]
    changed = keys.canonical("openai", {**one, "temperature": 1}, target)
    assert changed != bodies[0]


def test_key_equal_after_translation_whatever_the_dialect():
    target = resolve(snapshot(), "claude")
    messages = [{"role": "user", "content": "hi"}]
    openai_body = {"model": "claude", "messages": messages, "max_tokens": 50}
    anthropic_body = {"model": "claude", "messages": messages, "max_tokens": 50, "stream": True}
    wire = [
        keys.canonical("openai", openai_body, target),
        keys.canonical("anthropic", anthropic_body, target),
    ]
    assert wire[0] == wire[1]
    assert b"claude-3-5-sonnet-20241022" in wire[0]  # the upstream model, not the alias


def test_key_depends_on_identity_and_route_and_never_holds_text():
    snap = snapshot()
    secret = {"model": "gpt-4o", "messages": [{"role": "user", "content": "secret"}]}
    body = keys.canonical("openai", secret, resolve(snap, "gpt-4o"))
    route = keys.route(resolve(snap, "gpt-4o"))
    other_route = keys.route(resolve(snap, "claude"))
    tokens = ("token-a", "token-b")
    a, b = keys.identity([b"token-a"], tokens), keys.identity([b"token-b"], tokens)
    assert a and b and a != b
    assert keys.identity([b"nope"], ("token-a",)) is None
    assert keys.identity([], ()) == keys.ANONYMOUS
    found = {keys.cache_key(r, who, body) for r in (route, other_route) for who in (a, b)}
    assert len(found) == 4
    assert all(len(k) == 32 and b"secret" not in k and b"token" not in k for k in found)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (True, True)),
        ("no-cache", (False, True)),
        ("No-Cache, max-age=0", (False, True)),
        ("no-store", (False, False)),
        ("no-cache, no-store", (False, False)),
        ("max-age=60", (True, True)),
    ],
)
def test_cache_control(header, expected):
    assert keys.cache_control({"cache-control": header} if header else {}) == expected


def test_per_model_settings():
    data = {
        **DATA,
        "cache": {"enabled": False, "ttl_s": 60},
        "models": {
            "gpt-4o": {**DATA["models"]["gpt-4o"], "cache": {"enabled": True}},
            "claude": {**DATA["models"]["claude"], "cache": {"ttl_s": 5}},
        },
    }
    settings = snapshot(data).cache
    assert settings.ttl_for("gpt-4o") == 60
    assert settings.ttl_for("claude") is None  # inherits enabled: false
    assert snapshot().cache.ttl_for("claude") == 3600


# --- entries -------------------------------------------------------------------------------


def completion(finish: str = "stop", text: str = "Hello there.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


@pytest.mark.parametrize("size", [10, 20_000])
def test_answer_round_trip_compressed_above_threshold(size):
    answer = Answer(completion(text="x" * size), "openai", "gpt-4o", "gpt-4o", Decimal("0.0013"))
    data = answer.encode(compress_min_bytes=1024)
    assert (data[:1] == b"z") == (size > 1024)
    assert len(data) < 2048
    assert Answer.decode(data) == answer


@pytest.mark.parametrize("compress", [None, 0])
def test_stored_body_is_the_openai_replay_and_the_answer_round_trips(compress):
    """A non-stream OpenAI hit sends the stored body as is: it must be exactly what replaying
    the decoded answer gives; every other use parses it back into the original answer."""
    original = completion()
    stored = Answer.decode(
        Answer(original, "openai", "gpt-4o", "gpt-4o", Decimal("0.00130")).encode(compress)
    )
    assert stored.completion == original  # usage without the replay's cost
    assert orjson.loads(stored.body) == replay.response("openai", stored.completion)
    assert stored.cost == Decimal("0.0013") and stored.saved_usd == "0.0013"
    assert stored.usage_or_none == original["usage"]


def test_answer_without_usage_or_cost_round_trips():
    original = {k: v for k, v in completion().items() if k != "usage"}
    stored = Answer.decode(Answer(original, "openai", "gpt-4o", "gpt-4o", None).encode(None))
    assert stored.completion == original and "usage" not in stored.completion
    assert stored.cost is None and stored.saved_usd is None and stored.usage_or_none is None
    assert orjson.loads(stored.body)["usage"] == {"cost": 0}


@pytest.mark.parametrize(
    "data",
    [
        orjson.dumps({"completion": completion(), "provider": "openai", "cost": None}),  # v1
        b'{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}\n{}',
        b'["openai","gpt-4o","gpt-4o","not a number",true,null]\n{}',
        b'["openai","gpt-4o"]\n{}',
        b"z" + b"not zlib",
    ],
)
def test_entries_this_version_did_not_write_are_refused(data):
    with pytest.raises(ValueError):
        Answer.decode(data)


def test_only_complete_answers_are_storable():
    assert storable(completion("stop")) and storable(completion("length"))
    assert storable(sample("openai/chat.response.tool_calls.json"))
    assert not storable(completion("content_filter"))
    assert not storable({**completion(), "choices": []})
    broken = completion()
    broken["choices"][0]["finish_reason"] = None
    assert not storable(broken)


# --- memory backend ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_lru_bound_counts_real_size():
    stats, clock = CacheStats(), Clock()
    store = MemoryStore(10_000, stats, clock)
    value = b"v" * 1000
    for i in range(30):
        assert run(store.put(bytes([i]) * 32, value, 60, b"r"))
        assert store.bytes <= 10_000
        if i == 3:
            assert run(store.get(bytes([0]) * 32)) == value  # used: moves to the back
    assert stats.evictions["lru"] == 30 - len(store) > 0
    assert run(store.get(bytes([29]) * 32)) == value
    assert run(store.get(bytes([1]) * 32)) is None  # least recently used: gone first
    assert stats.memory_bytes == store.bytes > 1000 * len(store)
    assert not run(store.put(b"k" * 32, b"v" * 20_000, 60, b"r"))  # larger than the bound


def test_memory_lru_keeps_recently_read():
    store = MemoryStore(7_000, CacheStats(), Clock())  # room for five 1 kB entries
    for i in range(3):
        run(store.put(bytes([i]) * 32, b"v" * 1000, 60, b"r"))
    run(store.get(bytes([0]) * 32))
    for i in range(3, 6):
        run(store.put(bytes([i]) * 32, b"v" * 1000, 60, b"r"))
    assert run(store.get(bytes([0]) * 32)) is not None
    assert run(store.get(bytes([1]) * 32)) is None


def test_memory_ttl_and_reload_routes():
    stats, clock = CacheStats(), Clock()
    store = MemoryStore(1_000_000, stats, clock)
    run(store.put(b"a" * 32, b"1", 10, b"route-a"))
    run(store.put(b"b" * 32, b"2", 100, b"route-b"))
    clock.now += 10
    assert run(store.get(b"a" * 32)) is None and stats.evictions["expired"] == 1
    assert run(store.get(b"b" * 32)) == b"2"
    assert store.keep_routes({b"route-a"}) == 1
    assert run(store.get(b"b" * 32)) is None and stats.evictions["reload"] == 1
    assert store.bytes == 0 == stats.memory_bytes


# --- capture and replay --------------------------------------------------------------------


def capture_of(model: str, sse: bytes) -> StreamCapture:
    tap = StreamCapture(resolve(snapshot(), model), created=1700000000)
    for event in iter_events(sse):
        tap(event)
    return tap


def test_capture_of_openai_tool_call_stream_matches_whole_response():
    tap = capture_of("gpt-4o", sample_bytes("openai/chat.stream.tool_call.sse"))
    got = tap.completion()
    assert got is not None and storable(got)
    calls = got["choices"][0]["message"]["tool_calls"]
    assert calls and all(orjson.loads(c["function"]["arguments"]) is not None for c in calls)
    assert got["choices"][0]["finish_reason"] == "tool_calls"
    assert_valid_unified(got)


def test_capture_of_anthropic_stream_is_unified():
    tap = capture_of("claude", sample_bytes("anthropic/messages.stream.tool_use.sse"))
    got = tap.completion()
    assert got is not None and got["usage"]["completion_tokens"] > 0
    assert got["choices"][0]["message"]["tool_calls"]
    assert_valid_unified(got)


@pytest.mark.parametrize(
    "rel", ["openai/chat.stream.error.sse", "anthropic/messages.stream.error.sse"]
)
def test_capture_of_failed_stream_yields_nothing(rel):
    model = "gpt-4o" if rel.startswith("openai") else "claude"
    assert capture_of(model, sample_bytes(rel)).completion() is None


def test_capture_of_cut_stream_yields_nothing():
    whole = sample_bytes("openai/chat.stream.text.sse")
    assert capture_of("gpt-4o", whole).completion() is not None
    assert capture_of("gpt-4o", whole[: len(whole) // 2]).completion() is None


def test_replay_chunks_capture_back_to_the_same_answer():
    original = sample("openai/chat.response.tool_calls.json")
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in replay.chunks(original))
    got = capture_of("gpt-4o", body + b"data: [DONE]\n\n").completion()
    assert got is not None
    for mine, theirs in zip(got["choices"], original["choices"], strict=True):
        assert mine["finish_reason"] == theirs["finish_reason"]
        assert mine["message"]["content"] == theirs["message"]["content"]
        assert mine["message"]["tool_calls"] == theirs["message"]["tool_calls"]
    assert got["usage"] == original["usage"]
    for chunk in replay.chunks(original):
        if chunk["usage"]:  # the relay stamps the cost on the way out
            chunk["usage"]["cost"] = 0
        assert_valid_schema("unified.chunk.schema.json", chunk)


def test_replay_stream_openai_ends_like_a_live_one_with_cost_zero():
    data = replay.stream("openai", completion(), include_usage=True, upstream_model="gpt-4o")
    events = list(iter_events(data))
    assert events[-1].data == b"[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello there."
    assert chunks[-1]["usage"]["cost"] == 0 and chunks[-1]["usage"]["completion_tokens"] == 3
    quiet = replay.stream("openai", completion(), include_usage=False, upstream_model="gpt-4o")
    assert all(orjson.loads(e.data).get("usage") is None for e in list(iter_events(quiet))[:-1])


def test_replay_stream_anthropic_ends_with_message_stop_and_cost_zero():
    data = replay.stream("anthropic", completion(), include_usage=True, upstream_model="m")
    events = list(iter_events(data))
    names = [e.name for e in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    delta = next(orjson.loads(e.data) for e in events if e.name == "message_delta")
    assert delta["usage"]["cost"] == 0 and delta["usage"]["output_tokens"] == 3
    assert delta["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_replay_response_cost_zero_and_stored_answer_untouched(dialect):
    stored = Answer(completion(), "openai", "gpt-4o", "gpt-4o", Decimal("0.01")).encode(None)
    payload = replay.response(dialect, Answer.decode(stored).completion)
    assert payload["usage"]["cost"] == 0
    assert "cost" not in Answer.decode(stored).completion["usage"]  # each lookup: a new copy


def assert_valid_unified(response: dict[str, Any]) -> None:
    """Valid as a response once the gateway stamped its cost (stored answers have none)."""
    stamped = {**response, "usage": {**response["usage"], "cost": 0}}
    assert_valid_schema("unified.response.schema.json", stamped)


def assert_valid_schema(name: str, instance: dict[str, Any]) -> None:
    schema = orjson.loads(schema_path(name).read_bytes())
    errors = list(Draft202012Validator(schema).iter_errors(instance))
    assert not errors, [e.message[:200] for e in errors[:3]]


# --- config --------------------------------------------------------------------------------

CONFIG = """\
providers:
  openai: {type: openai, base_url: "https://api.openai.com/v1", api_key: k}
models:
  gpt-4:
    provider: openai
    price: {input_per_1k: 0.03, output_per_1k: 0.06}
    cache: {ttl_s: 30}
cache:
"""


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  backend: redis\n", "missing required key 'redis_url' (backend: redis)"),
        ("  backend: disk\n", "must be one of: memory, redis"),
        ("  ttl_s: 0\n", "must be > 0"),
        ("  redis_url: http://x\n", "must match"),
        ("  max_byts: 5\n", "did you mean 'max_bytes'"),
    ],
)
def test_config_problems(tmp_path, section, message):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + section)
    with pytest.raises(ConfigError) as caught:
        load_snapshot(path, {})
    assert any(message in str(p) for p in caught.value.problems), caught.value.problems


def test_config_redis_url_reads_the_password_from_the_environment(tmp_path):
    path = tmp_path / "config.yaml"
    url = "rediss://:${CACHE_PASS}@redis.cache.svc:6380/2"
    path.write_text(CONFIG + f"  enabled: true\n  backend: redis\n  redis_url: {url}\n")
    snap = load_snapshot(path, {"CACHE_PASS": "s3cret"})
    assert snap.cache.backend.redis_url == "rediss://:s3cret@redis.cache.svc:6380/2"
    assert "s3cret" not in repr(snap)
    assert snap.cache.ttl_for("gpt-4") == 30


# --- access log ----------------------------------------------------------------------------


def test_access_log_has_the_cache_field_only_where_the_cache_applies():
    hit = RequestRecord("req_1", "openai", "gpt-4o", False, status=200)
    hit.cache, hit.cost_saved, hit.cost = "hit", Decimal("0.00123"), Decimal(0)
    fields = access_fields(hit)
    assert fields["cache"] == "hit" and fields["cost_saved_usd"] == 0.00123
    assert fields["cost_usd"] == 0
    assert "cache=hit" in text_line(fields)
    plain = access_fields(RequestRecord("req_2", "openai", "gpt-4o", False, status=200))
    assert "cache" not in plain and "cost_saved_usd" not in plain
