"""Live config: every way a config file gets replaced, SIGHUP, bad edits, and the pools.

In-process gateways get the reloader started on their loop exactly as ``serve()`` does; the
subprocess tests run the real CLI, so the wiring (watch on by default, ``--no-watch``, SIGHUP,
a clean shutdown) is proven too. Reload reads ``${VAR}`` from the process environment, so the
in-process tests put the vendor keys there.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import yaml

from proxy.pricing import Price, Usage, cost, format_usd
from proxy.sim.faults import Fault
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, Gateway, gateway_config, wait_until
from tests.e2e.live_config import (
    WRITERS,
    ConfigMapDir,
    dump,
    start_live,
    stop_live,
    upstream_ports,
    version_of,
    wait_for_version,
    write_rename_over,
)
from tests.http import get, post

FRESH = "fresh-model"
SECRET = "sk-live-TOPSECRET-do-not-log-0123456789"
UNSET = "LLM_EDGE_RELOAD_TEST_UNSET_KEY"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.delenv(UNSET, raising=False)


@pytest.fixture
def live(gateway_factory: Callable[..., Gateway], keys: None) -> Iterator[Callable[..., Gateway]]:
    """``live()``: an in-process gateway reloading its config file; ``live(where)`` watches
    ``where(gateway)`` instead (e.g. a ConfigMap volume seeded with the same file)."""
    running: list[tuple[Gateway, Any]] = []

    def make(where: Callable[[Gateway], Path] | None = None) -> Gateway:
        gateway = gateway_factory()
        path = where(gateway) if where else None
        running.append((gateway, start_live(gateway, path)))
        return gateway

    yield make
    for gateway, task in running:
        stop_live(gateway, task)


def config_of(gateway: Gateway) -> dict[str, Any]:
    return yaml.safe_load(gateway.config_path.read_text())


def with_fresh_model(data: dict[str, Any], price: dict[str, str]) -> dict[str, Any]:
    """A new model (served by Anthropic, asked for in OpenAI format) and a new gpt-4o price."""
    out = yaml.safe_load(yaml.safe_dump(data))
    out["models"][FRESH] = {
        "provider": "anthropic",
        "upstream_model": "sim-fresh",
        "price": {k: float(v) for k, v in price.items()},
    }
    out["models"]["gpt-4o"]["price"] = {k: float(v) for k, v in price.items()}
    return out


def chat(url: str, model: str, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return post(f"{url}/v1/chat/completions", orjson.dumps(body))


def priced_at(reply: Any, price: dict[str, str]) -> bool:
    headers = reply.headers
    usage = Usage(int(headers["x-llm-input-tokens"]), int(headers["x-llm-output-tokens"]))
    amount = cost(Price(Decimal(price["input_per_1k"]), Decimal(price["output_per_1k"])), usage)
    return reply.headers["x-llm-cost-usd"] == format_usd(amount)


def in_effect(url: str, price: dict[str, str]) -> bool:
    """The fresh model answers and gpt-4o costs ``price``."""
    if chat(url, FRESH).status_code != 200:
        return False
    reply = chat(url, "gpt-4o")
    return reply.status_code == 200 and priced_at(reply, price)


def assert_within_a_second(url: str, price: dict[str, str]) -> None:
    started = time.monotonic()
    wait_until(lambda: in_effect(url, price), timeout=1.0)
    assert time.monotonic() - started < 1.0


PRICE_A = {"input_per_1k": "0.125", "output_per_1k": "0.375"}
PRICE_B = {"input_per_1k": "0.0625", "output_per_1k": "0.4375"}


# --- each way of replacing the file ---------------------------------------------------------


@pytest.mark.parametrize("how", ["in_place", "rename_over", "configmap"])
def test_each_way_of_replacing_the_file_takes_effect_within_a_second(live, tmp_path, how):
    """Twice in a row: after a rename or a ``..data`` swap the watch must still be live."""
    if how == "configmap":
        volumes: list[ConfigMapDir] = []

        def to_volume(gateway: Gateway) -> Path:
            volumes.append(ConfigMapDir(tmp_path / "volume", gateway.config_path.read_bytes()))
            return volumes[0].path

        gateway = live(to_volume)
        publish: Callable[[bytes], None] = volumes[0].publish
    else:
        gateway = live()
        path = gateway.config_path
        publish = lambda raw: WRITERS[how](path, raw)  # noqa: E731
    base = config_of(gateway)
    assert chat(gateway.url, FRESH).status_code == 404
    for price in (PRICE_A, PRICE_B):
        publish(dump(with_fresh_model(base, price)))
        assert_within_a_second(gateway.url, price)
    assert gateway.state.last_reload.ok and gateway.state.last_reload.source == "watch"


def test_a_burst_of_writes_is_one_reload_of_the_last(live):
    """Editors and tools write several times in a row; the gateway loads only the result."""
    gateway = live()
    base = config_of(gateway)
    prices = [{"input_per_1k": f"0.{n}1", "output_per_1k": f"0.{n}3"} for n in range(1, 9)]
    files = [dump(with_fresh_model(base, price)) for price in prices]
    for raw in files:
        write_rename_over(gateway.config_path, raw)
    wait_until(lambda: in_effect(gateway.url, prices[-1]), timeout=1.0)
    assert gateway.state.reload_counts["error"] == 0
    assert gateway.state.reload_counts["ok"] < len(files)  # never one reload per write


def test_configmap_update_reaches_the_real_cli(sim, spawn_gateway, tmp_path):
    """The CLI watches by default; a forced SIGHUP reload of an unchanged file is recorded."""
    (tmp_path / "seed").mkdir()
    base = yaml.safe_load(gateway_config(sim.url, tmp_path / "seed").read_text())
    volume = ConfigMapDir(tmp_path / "volume", dump(base))
    process = spawn_gateway(volume.path)
    assert chat(process.url, FRESH).status_code == 404
    for price in (PRICE_A, PRICE_B):
        volume.publish(dump(with_fresh_model(base, price)))
        assert_within_a_second(process.url, price)
    process.signal(signal.SIGHUP)
    wait_until(lambda: status(process.url)["last_reload"]["trigger"] == "sighup", timeout=1.0)
    assert status(process.url)["last_reload"]["ok"] is True
    process.signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert "Traceback" not in process.log() and "Unclosed" not in process.log()


def test_sighup_reloads_when_watching_is_off(sim, spawn_gateway, tmp_path):
    path = gateway_config(sim.url, tmp_path)
    base = yaml.safe_load(path.read_text())
    process = spawn_gateway(path, "--no-watch")
    original = status(process.url)["config"]["version"]
    write_rename_over(path, dump(with_fresh_model(base, PRICE_A)))
    # --no-watch: the edit is not picked up on its own (the watcher would take ~0.1 s).
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert status(process.url)["config"]["version"] == original
        time.sleep(0.1)
    process.signal(signal.SIGHUP)
    assert_within_a_second(process.url, PRICE_A)
    assert status(process.url)["last_reload"] == {
        **status(process.url)["last_reload"],
        "ok": True,
        "trigger": "sighup",
        "error": None,
    }
    process.signal(signal.SIGTERM)
    assert process.wait(10) == 0


def status(url: str) -> dict[str, Any]:
    return get(f"{url}/status").json()


# --- removed models, bad edits ----------------------------------------------------------------


def test_removed_model_is_404_right_after_its_reload(live, sim):
    gateway = live()
    data = config_of(gateway)
    for gone in ("gpt-4", "claude-3-haiku-20240307"):
        del data["models"][gone]
    raw = dump(data)
    write_rename_over(gateway.config_path, raw)
    wait_for_version(gateway, raw)
    upstream_calls = len(sim.completions())
    for name in ("gpt-4", "gpt4"):
        with pytest.raises(openai.NotFoundError) as caught:
            gateway.openai().chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.body["type"] == "model_not_found"
    for name in ("claude-3-haiku-20240307", "claude-3-haiku"):
        with pytest.raises(anthropic.NotFoundError) as caught:
            gateway.anthropic().messages.create(
                model=name, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.response.headers["x-llm-error"] == "model_not_found"
    assert len(sim.completions()) == upstream_calls  # refused without an upstream call
    listed = {m["id"] for m in get(f"{gateway.url}/v1/models").json()["data"]}
    assert "gpt-4" not in listed and "gpt-4o" in listed
    assert chat(gateway.url, "gpt-4o").status_code == 200


def line_of(raw: bytes, text: str) -> int:
    """1-based line of the first line containing ``text``."""
    lines = raw.decode().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def invalid_edit(data: dict[str, Any], kind: str) -> tuple[bytes, str]:
    """A broken config and the text its error must contain (file:line: YAML path)."""
    data = yaml.safe_load(yaml.safe_dump(data))
    if kind == "yaml_error":
        raw = dump(data) + f"broken: [{SECRET}, {{\n".encode()
        return raw, "YAML syntax error"
    if kind == "schema_error":
        data["models"]["gpt-4"]["price"]["input_per_1k"] = SECRET
        raw = dump(data)
        return raw, f":{line_of(raw, SECRET)}: models.gpt-4.price.input_per_1k"
    if kind == "unknown_provider":
        data["models"]["gpt-4"]["provider"] = "nowhere"
        raw = dump(data)
        return raw, f":{line_of(raw, 'nowhere')}: models.gpt-4.provider"
    assert kind == "unset_var"
    data["providers"]["openai"]["api_key"] = f"${{{UNSET}}}"
    raw = dump(data)
    return raw, f":{line_of(raw, UNSET)}: providers.openai.api_key"


@pytest.mark.parametrize(
    "kind", ["yaml_error", "schema_error", "unknown_provider", "unset_var", "deleted"]
)
def test_invalid_edit_keeps_every_model_working(live, caplog, kind):
    caplog.set_level(logging.INFO, logger="llm_edge_agent")
    gateway = live()
    good = config_of(gateway)
    serving = gateway.state.snapshot.version
    before = time.time()
    if kind == "deleted":
        gateway.config_path.unlink()
        where = ": cannot read: No such file"
    else:
        raw, where = invalid_edit(good, kind)
        write_rename_over(gateway.config_path, raw)
    wait_until(lambda: gateway.state.reload_counts["error"] == 1, timeout=2)

    assert gateway.state.snapshot.version == serving
    assert get(f"{gateway.url}/readyz").status_code == 200
    report = status(gateway.url)
    assert report["config"]["version"] == serving
    last = report["last_reload"]
    assert last["ok"] is False and last["trigger"] == "watch"
    assert where in last["error"] and str(gateway.config_path) in last["error"]
    assert before - 1 <= datetime.fromisoformat(last["at"]).timestamp() <= time.time() + 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert where in logged
    assert SECRET not in logged and SECRET not in orjson.dumps(report).decode()
    for name in gateway.state.snapshot.models:
        reply = chat(gateway.url, name)
        assert reply.status_code == 200, (name, reply.text)

    write_rename_over(gateway.config_path, dump(with_fresh_model(good, PRICE_A)))
    wait_until(lambda: in_effect(gateway.url, PRICE_A), timeout=2)
    assert status(gateway.url)["last_reload"]["ok"] is True
    assert status(gateway.url)["last_reload"]["error"] is None
    assert gateway.state.reload_counts == {"ok": 1, "error": 1}


def test_metrics_count_reloads_by_result(live):
    gateway = live()
    if get(f"{gateway.url}/metrics").status_code == 404:
        pytest.skip("/metrics is not served yet (another engineer is adding it)")
    good = config_of(gateway)
    write_rename_over(gateway.config_path, invalid_edit(good, "yaml_error")[0])
    wait_until(lambda: gateway.state.reload_counts["error"] == 1, timeout=2)
    write_rename_over(gateway.config_path, dump(with_fresh_model(good, PRICE_A)))
    wait_until(lambda: gateway.state.reload_counts["ok"] == 1, timeout=2)
    text = get(f"{gateway.url}/metrics").text
    counts = {
        result: [
            line
            for line in text.splitlines()
            if "reload" in line and not line.startswith("#") and f'result="{result}"' in line
        ]
        for result in ("ok", "error")
    }
    for result, lines in counts.items():
        assert lines, f"no reload counter for result={result}:\n{text}"
        assert float(lines[0].rsplit(" ", 1)[1]) == 1.0


# --- pooled sessions across reloads -------------------------------------------------------------


def test_unchanged_provider_keeps_its_session_and_warm_connection(live, sim):
    gateway = live()
    data = config_of(gateway)
    for model in ("gpt-4o", "claude-3-5-haiku-20241022"):  # one warm connection per provider
        assert chat(gateway.url, model).status_code == 200
    sessions = dict(gateway.state.pools.upstreams())
    warm = upstream_ports(sim.server.port)
    assert len(warm) == 2

    # Prices, models and a request timeout change; no provider's connection settings do.
    edited = with_fresh_model(data, PRICE_A)
    edited["providers"]["anthropic"]["timeouts"] = {"request_ms": 12345}
    raw = dump(edited)
    write_rename_over(gateway.config_path, raw)
    wait_for_version(gateway, raw)
    for model in ("gpt-4o", "claude-3-5-haiku-20241022", FRESH):
        assert chat(gateway.url, model).status_code == 200
    assert gateway.state.pools.upstreams() == sessions  # the very same ClientSession objects
    assert not any(s.closed for s in sessions.values())
    assert upstream_ports(sim.server.port) == warm  # and their warm connections were reused

    # Now OpenAI's connect timeout changes: only its session (and connection) is replaced.
    edited["providers"]["openai"]["timeouts"] = {"connect_ms": 4321}
    raw = dump(edited)
    write_rename_over(gateway.config_path, raw)
    wait_for_version(gateway, raw)
    for model in ("gpt-4o", "claude-3-5-haiku-20241022"):
        assert chat(gateway.url, model).status_code == 200
    now = gateway.state.pools.upstreams()
    assert now["anthropic"] is sessions["anthropic"]
    assert now["openai"] is not sessions["openai"]
    wait_until(lambda: sessions["openai"].closed, timeout=2)
    wait_until(lambda: len(upstream_ports(sim.server.port) & warm) == 1, timeout=2)
    assert len(upstream_ports(sim.server.port)) == 2


@pytest.mark.parametrize("change", ["changed", "removed"])
def test_retired_session_closes_only_after_its_requests_finish(live, sim, change):
    """A stream to OpenAI is running when its provider's connection settings change (or the
    provider is removed): it finishes on its old session and old price; then that closes."""
    gateway = live()
    data = config_of(gateway)
    old_price = data["models"]["gpt-4o"]["price"]
    old = gateway.state.pools.upstreams()["openai"]
    sim.sim.faults.push(Fault("ok", path="/v1/chat/completions", n_chunks=10, chunk_delay_ms=150))
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "a slow one"}],
    )
    chunks = [next(stream)]  # the stream is open; ~1.5 s of it remain

    edited = yaml.safe_load(yaml.safe_dump(data))
    if change == "changed":
        edited["providers"]["openai"]["timeouts"] = {"connect_ms": 4321}
        edited["models"]["gpt-4o"]["price"] = {k: float(v) for k, v in PRICE_A.items()}
    else:
        del edited["providers"]["openai"]
        edited["models"] = {k: m for k, m in edited["models"].items() if m["provider"] != "openai"}
    raw = dump(edited)
    write_rename_over(gateway.config_path, raw)
    wait_for_version(gateway, raw)
    assert gateway.state.streams_open == 1, "the stream ended before the reload: too slow?"
    assert not old.closed
    assert gateway.state.pools.upstreams().get("openai") is not old
    after = chat(gateway.url, "gpt-4o")
    if change == "changed":
        assert after.status_code == 200 and priced_at(after, PRICE_A)
    else:
        assert after.status_code == 404 and after.json()["error"]["type"] == "model_not_found"
    assert not old.closed

    chunks += list(stream)
    usage = Usage.from_openai(chunks[-1].usage.model_dump())
    price = Price(Decimal(str(old_price["input_per_1k"])), Decimal(str(old_price["output_per_1k"])))
    assert chunks[-1].usage.model_extra["cost"] == float(format_usd(cost(price, usage)))
    wait_until(lambda: old.closed, timeout=2)
    assert gateway.state.pools.retired_count() == 0
    assert version_of(raw) == gateway.state.snapshot.version
