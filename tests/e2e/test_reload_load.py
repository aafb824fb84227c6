"""50 live reloads under continuous load: no failed request, every cost from its own snapshot,
no connection or file-descriptor leak.

How "its own snapshot" is checked without guessing at timing: every valid config version routes
the two load models to a version-specific upstream id (``sim-gpt-v7``) and prices them
uniquely. The ``x-llm-model`` header names the upstream model the request was routed to, which
identifies the snapshot the request started on; its cost must then equal its tokens at *that*
version's prices. A request priced from a different snapshot than it was routed by (e.g. a
stream whose cost were read at its end, after a reload) fails the check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import yaml

from proxy.pricing import Price, Usage, cost, format_usd
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, Gateway, wait_until
from tests.e2e.live_config import (
    dump,
    fd_count,
    start_live,
    stop_live,
    tcp_connections,
    wait_for_version,
    write_rename_over,
)
from tests.http import post

GPT, CLAUDE = "gpt-4o", "claude-3-5-haiku-20241022"
UNSET = "LLM_EDGE_RELOAD_LOAD_TEST_UNSET"
RELOADS = 50
INVALID_KINDS = ("yaml_error", "schema_error", "unknown_provider", "unset_var")
PROMPT = [{"role": "user", "content": "Say something about sidecars."}]


@dataclass(frozen=True)
class Result:
    """One successful request as its client saw it."""

    worker: str
    upstream_model: str
    usage: Usage
    cost_text: str  # the x-llm-cost-usd header, or the streamed usage.cost number as text


def price_of(version: int, model: str) -> Price:
    """Unique per (version, model): a cost identifies the version that priced it."""
    base = Decimal(version) / 1000 + (Decimal("0.0001") if model == CLAUDE else 0)
    return Price(input_per_1k=base, output_per_1k=base * 3)


def upstream_of(version: int, model: str) -> str:
    return f"sim-{'claude' if model == CLAUDE else 'gpt'}-v{version}"


def valid_config(base: dict[str, Any], version: int, *, flush: int = 0) -> bytes:
    """Models added and removed, prices changed, timeouts changed (OpenAI's connect timeout,
    so its pooled session is replaced; Anthropic's request budget, so its session is kept).
    ``flush`` gives every provider a new connect timeout: every session is replaced."""
    data = yaml.safe_load(yaml.safe_dump(base))
    for model in (GPT, CLAUDE):
        price = price_of(version, model)
        data["models"][model]["upstream_model"] = upstream_of(version, model)
        data["models"][model]["price"] = {
            "input_per_1k": float(price.input_per_1k),
            "output_per_1k": float(price.output_per_1k),
        }
    data["models"][f"extra-v{version}"] = {
        "provider": "openai" if version % 2 else "anthropic",
        "upstream_model": "sim-extra",
        "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
    }
    data["providers"]["openai"]["timeouts"] = {"connect_ms": 4000 + version + 100 * flush}
    data["providers"]["anthropic"]["timeouts"] = {
        "connect_ms": 5000 + flush,
        "request_ms": 20000 + version,
    }
    for name, provider in data["providers"].items():  # any other vendor: replaced on a flush
        if name not in ("openai", "anthropic"):
            provider["timeouts"] = {"connect_ms": 6000 + flush}
    return dump(data)


def invalid_config(valid: bytes, kind: str, n: int) -> bytes:
    """The last valid config with one flaw; a comment keeps every file's bytes distinct."""
    data = yaml.safe_load(valid)
    if kind == "yaml_error":
        return valid + f"# edit {n}\nbroken: [unclosed\n".encode()
    if kind == "schema_error":
        data["retry"]["max_retries"] = "three"
    elif kind == "unknown_provider":
        data["models"][GPT]["provider"] = "nowhere"
    else:
        data["providers"]["anthropic"]["api_key"] = f"${{{UNSET}}}"
    return dump(data) + f"# edit {n}\n".encode()


# --- the clients ------------------------------------------------------------------------------


def openai_call(client: Any, model: str, stream: bool) -> Result:
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=PROMPT)
        reply = raw.parse()
        usage = Usage.from_openai(reply.usage.model_dump())
        assert reply.choices[0].message.content
        assert reply.usage.model_extra["cost"] == float(raw.headers["x-llm-cost-usd"])
        return Result("openai", raw.headers["x-llm-model"], usage, raw.headers["x-llm-cost-usd"])
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].usage
    assert text and final is not None, "stream ended without text or usage"
    usage = Usage.from_openai(final.model_dump())
    return Result(
        "openai-stream", raw.headers["x-llm-model"], usage, str(final.model_extra["cost"])
    )


def anthropic_call(client: Any, model: str, stream: bool) -> Result:
    if not stream:
        raw = client.messages.with_raw_response.create(model=model, max_tokens=200, messages=PROMPT)
        message = raw.parse()
        usage = Usage.from_anthropic(message.usage.model_dump())
        assert message.content and message.content[0].text
        return Result("anthropic", raw.headers["x-llm-model"], usage, raw.headers["x-llm-cost-usd"])
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=200, messages=PROMPT, stream=True
    )
    events = list(raw.parse())
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop", types
    delta = next(e for e in events if e.type == "message_delta")
    usage = Usage.from_anthropic(
        {**events[0].message.usage.model_dump(), **delta.usage.model_dump(exclude_none=True)}
    )
    return Result("anthropic-stream", raw.headers["x-llm-model"], usage, str(delta.usage.cost))


def worker(
    gateway: Gateway, dialect: str, stream: bool, stop: threading.Event, limit: int | None = None
) -> tuple[list[Result], list[str]]:
    """Alternate between an OpenAI and a Claude model until ``stop`` (or ``limit`` requests)."""
    results: list[Result] = []
    failures: list[str] = []
    make, call = (
        (gateway.openai, openai_call)
        if dialect == "openai"
        else (gateway.anthropic, anthropic_call)
    )
    with make(timeout=20) as client:
        n = 0
        while not stop.is_set() and (limit is None or n < limit):
            model = (GPT, CLAUDE)[n % 2]
            n += 1
            try:
                results.append(call(client, model, stream))
            except Exception as exc:  # every failure is collected and fails the test
                failures.append(f"{dialect} stream={stream} {model}: {exc!r}")
    return results, failures


def run_load(
    gateway: Gateway, while_running: Callable[[], None] | None = None, limit: int | None = None
) -> tuple[list[Result], list[str]]:
    """Four workers (both SDKs x streaming or not) for as long as ``while_running`` runs, or
    ``limit`` requests each."""
    stop = threading.Event()
    plans = [(d, s) for d in ("openai", "anthropic") for s in (False, True)]
    with ThreadPoolExecutor(len(plans)) as pool:
        futures = [pool.submit(worker, gateway, d, s, stop, limit) for d, s in plans]
        try:
            if while_running is not None:
                while_running()
        finally:
            if while_running is not None:
                stop.set()
            outcomes = [f.result(timeout=60) for f in futures]
    return [r for rs, _ in outcomes for r in rs], [f for _, fs in outcomes for f in fs]


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture
def live(gateway_factory: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.delenv(UNSET, raising=False)
    gateway = gateway_factory()
    task = start_live(gateway)
    yield gateway
    stop_live(gateway, task)


def settled_fds(gateway: Gateway, sim_port: int, fresh: bytes) -> int:
    """Replace both providers' sessions by reloading ``fresh`` (new connection settings), wait
    until no connection to the gateway or the simulator is open, and count open fds."""
    write_rename_over(gateway.config_path, fresh)
    wait_for_version(gateway, fresh)
    gateway_port = gateway.server.port

    def open_connections() -> list[tuple[int, int, str]]:
        return tcp_connections(sim_port) + tcp_connections(gateway_port)

    try:
        wait_until(lambda: not open_connections(), timeout=5)
    except AssertionError:
        still = open_connections()
        raise AssertionError(f"{len(still)} connections open at rest: {still[:4]}...") from None
    wait_until(lambda: gateway.state.pools.retired_count() == 0, timeout=5)
    return fd_count()


def test_fifty_reloads_under_load(live, sim):
    gateway: Gateway = live
    sim.sim.configure(chunk_delay_ms=5)  # streams last ~40 ms, so many span a reload
    base = yaml.safe_load(gateway.config_path.read_text())

    # Warm everything (SDK clients, pools, threads), then measure at rest.
    write_rename_over(gateway.config_path, valid_config(base, 0))
    _, warm_failures = run_load(gateway, limit=4)
    assert not warm_failures
    baseline = settled_fds(gateway, sim.server.port, valid_config(base, 0, flush=1))
    counts_before = dict(gateway.state.reload_counts)

    sessions: list[Any] = []  # every pooled session the run used; held, so GC cannot close them

    def reload_fifty_times() -> None:
        last_valid = b""
        for n in range(RELOADS):
            if n % 2 == 0:
                version = n // 2 + 1
                last_valid = valid_config(base, version)
                write_rename_over(gateway.config_path, last_valid)
                wait_for_version(gateway, last_valid)
                sessions.extend(gateway.state.pools.upstreams().values())
                assert_models_follow(gateway, version)
            else:
                errors = gateway.state.reload_counts["error"]
                kind = INVALID_KINDS[(n // 2) % len(INVALID_KINDS)]
                write_rename_over(gateway.config_path, invalid_config(last_valid, kind, n))
                wait_until(lambda e=errors: gateway.state.reload_counts["error"] == e + 1)

    results, failures = run_load(gateway, reload_fifty_times)

    assert not failures, failures[:5]
    assert gateway.state.reload_counts == {
        "ok": counts_before["ok"] + RELOADS // 2,
        "error": counts_before["error"] + RELOADS // 2,
    }
    assert_priced_by_their_own_snapshot(results)

    end = settled_fds(gateway, sim.server.port, valid_config(base, RELOADS, flush=2))
    assert end <= baseline, f"{end - baseline} file descriptors more than before the reloads"
    assert all(session.closed for session in sessions)  # retired sessions were closed, not GC'd


def assert_priced_by_their_own_snapshot(results: list[Result]) -> None:
    """The upstream id a request was routed to names its snapshot; its cost must be that
    snapshot's price for its tokens (to the digit for headers, as a JSON number in streams)."""
    versions = {
        upstream_of(version, model): (version, model)
        for version in range(RELOADS + 1)
        for model in (GPT, CLAUDE)
    }
    seen = set()
    for result in results:
        version, model = versions[result.upstream_model]
        seen.add(version)
        expected = format_usd(cost(price_of(version, model), result.usage))
        if result.worker.endswith("stream"):
            assert float(result.cost_text) == float(expected), result
        else:
            assert result.cost_text == expected, result
    assert len(results) >= 100 and len(seen) >= RELOADS // 4, (len(results), sorted(seen))
    workers = {r.worker for r in results}
    assert workers == {"openai", "openai-stream", "anthropic", "anthropic-stream"}


def assert_models_follow(gateway: Gateway, version: int) -> None:
    """Right after reload ``version``: its extra model answers, the previous one is gone."""

    def ask(model: str) -> Any:
        body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % model.encode()
        return post(f"{gateway.url}/v1/chat/completions", body)

    assert ask(f"extra-v{version}").status_code == 200
    gone = ask(f"extra-v{version - 1}")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "model_not_found"
