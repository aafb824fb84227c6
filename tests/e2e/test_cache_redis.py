"""The response cache on a real Redis shared by two sidecars: shared hits, Redis killed mid-run
(misses, never a failed request), Redis back (hits again, no restart of the sidecars)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import redis

from proxy.engine.cache.entry import Answer
from tests.conftest import wait_until
from tests.e2e.test_cache import ask, ask_anthropic
from tests.http import get
from tests.prom import samples
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

PASSWORD = "redis-pass-6b1f0e"
# A generous deadline: these tests prove behaviour on a loaded machine, not speed.
BASE = {"enabled": True, "backend": "redis", "redis_timeout_ms": 1000}


def redis_config(server: RedisServer, **extra: Any) -> dict[str, Any]:
    url = f"redis://:${{CACHE_REDIS_PASSWORD}}@127.0.0.1:{server.port}/0"
    return {"cache": {**BASE, "redis_url": url, **extra}}


def test_two_sidecars_share_hits_and_redis_holds_only_hashes(gateway_factory, sim):
    server = RedisServer(password=PASSWORD).start()
    try:
        env = {"CACHE_REDIS_PASSWORD": PASSWORD}
        config = redis_config(server, ttl_s=120, compress_min_bytes=100)
        one, two = gateway_factory(config, environ=env), gateway_factory(config, environ=env)
        first = ask(one, "shared across the fleet")
        shared = ask(two, "shared across the fleet")
        assert first.headers["x-llm-cache"] == "miss"
        assert shared.headers["x-llm-cache"] == "hit" and shared.headers["x-llm-attempts"] == "0"
        assert shared.headers["x-llm-cost-saved-usd"] == first.headers["x-llm-cost-usd"]
        assert ask_anthropic(two, "the other dialect").headers["x-llm-cache"] == "miss"
        assert ask_anthropic(one, "the other dialect").headers["x-llm-cache"] == "hit"
        assert len(sim.completions()) == 2
        client = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD)
        keys = client.keys("*")
        assert len(keys) == 2
        for key in keys:
            assert key.startswith(b"llm-edge:cache:") and len(key) == len("llm-edge:cache:") + 64
            assert b"fleet" not in key and b"dialect" not in key
            assert 0 < client.pttl(key) <= 120_000
            value = client.get(key)
            assert value is not None and value[:1] == b"z"  # compressed above 100 bytes
            assert Answer.decode(value).provider in ("openai", "anthropic")
        client.close()
    finally:
        server.stop()


def test_redis_killed_gives_misses_then_hits_again_when_it_returns(
    gateway_factory,
    sim,
    redis_server: RedisServer,  # noqa: F811
    caplog: Any,
):
    caplog.set_level(logging.WARNING, logger="llm_edge_agent.cache")
    config = {
        "cache": {**BASE, "redis_url": redis_server.url},
        "retry": {"max_retries": 0},
    }
    one, two = gateway_factory(config), gateway_factory(config)
    assert ask(one, "before").headers["x-llm-cache"] == "miss"
    assert ask(two, "before").headers["x-llm-cache"] == "hit"
    redis_server.kill()
    for gateway in (one, two, one, two):
        reply = ask(gateway, "before")  # stored, but Redis is gone: a miss, and an answer
        assert reply.headers["x-llm-cache"] == "miss" and reply.parse().choices[0].message.content
    stream = one.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "streamed"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    for gateway in (one, two):
        metrics = samples(get(f"{gateway.url}/metrics").text)
        assert metrics[("llm_edge_cache_redis_errors_total", frozenset())] >= 1
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2  # once per sidecar for the whole incident

    redis_server.start()  # the same port; the sidecars were never restarted
    wait_until(lambda: ask(one, "after").headers["x-llm-cache"] == "hit", timeout=15, interval=0.1)
    assert ask(two, "after").headers["x-llm-cache"] == "hit"
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_redis_never_started_is_only_misses(gateway_factory, sim):
    server = RedisServer()  # a free port nobody listens on
    config = {"cache": {**BASE, "redis_url": server.url}}
    gateway = gateway_factory(config)
    for _ in range(3):
        reply = ask(gateway, "no redis at all")
        assert reply.headers["x-llm-cache"] == "miss" and reply.parse().choices
    body = orjson.loads(get(f"{gateway.url}/status").content)
    assert "password" not in orjson.dumps(body).decode()
