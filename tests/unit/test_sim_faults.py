"""The simulator's faults and control API seen from a raw client, plus its runner and CLI.

Each fault kind must look on the wire exactly like the upstream failure it stands for, or the
gateway's retry and error tests built on it prove nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from proxy.sim import BackgroundServer, Fault, Sim, free_port
from proxy.sse import iter_events
from tests.kit import sample
from tests.sdk import openai_client
from tests.unit.sim_helpers import (
    OPENAI_KEY,
    an_body,
    an_headers,
    anthropic_events,
    oa_body,
    oa_headers,
    openai_chunks,
    raw,
    server_fixture,  # noqa: F401  (the `server` fixture)
    sim_fixture,  # noqa: F401  (the `sim` fixture)
)

REPO = Path(__file__).resolve().parents[2]


# --- faults, seen from a raw client -----------------------------------------------------------


def test_fault_reset(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("reset"))
    result = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert isinstance(result.error, aiohttp.ClientConnectionError) and result.status is None
    (record,) = sim.wait_for_requests(1, done=True)
    assert record.fault == "reset" and record.status is None


def test_fault_status_uses_the_kit_samples(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(
        Fault("status", status=429),
        Fault("status", status=429, headers={"retry-after": "0", "retry-after-ms": "5"}),
        Fault("status", status=429, sample="429-insufficient_quota"),
        Fault("status", status=529),
    )
    first = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    expected = sample("openai/errors/429.json")
    assert (first.status, first.json()) == (429, expected["body"])
    assert (
        first.headers["retry-after"] == "3"
        and first.headers["x-ratelimit-reset-tokens"] == "2.292s"
    )
    second = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert (second.headers["retry-after"], second.headers["retry-after-ms"]) == ("0", "5")
    third = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert third.json()["error"]["code"] == "insufficient_quota"
    fourth = raw(server, "/v1/messages", an_body(), an_headers())
    assert (fourth.status, fourth.json()) == (529, sample("anthropic/errors/529.json")["body"])
    assert (
        fourth.headers["request-id"] == sample("anthropic/errors/529.json")["headers"]["request-id"]
    )


def test_fault_slow_headers_and_slow_body(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("slow_headers", delay_ms=150), Fault("slow_body", delay_ms=150))
    slow_headers = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert slow_headers.status == 200 and slow_headers.first_byte_s >= 0.15
    slow_body = raw(server, "/v1/messages", an_body(), an_headers())
    assert slow_body.first_byte_s < 0.15 <= slow_body.elapsed_s
    assert slow_body.json()["type"] == "message"


def test_fault_stream_cut(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("stream_cut", after_events=3), Fault("stream_cut", after_events=2))
    cut = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    assert cut.status == 200 and isinstance(cut.error, aiohttp.ClientPayloadError)
    assert len(list(iter_events(cut.body))) == 3 and b"[DONE]" not in cut.body
    cut = raw(server, "/v1/messages", an_body(stream=True), an_headers())
    assert isinstance(cut.error, aiohttp.ClientPayloadError)
    assert [e["type"] for e in anthropic_events(cut.body)] == [
        "message_start",
        "content_block_start",
    ]
    sim.faults.push(Fault("stream_cut"))
    body_cut = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert isinstance(body_cut.error, aiohttp.ClientPayloadError)


def test_fault_stream_error(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("stream_error", after_events=2), Fault("stream_error", after_events=3))
    oa = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    events = list(iter_events(oa.body))
    assert len(events) == 3 and b"[DONE]" not in oa.body and oa.error is None
    assert orjson.loads(events[-1].data) == sample("openai/errors/500.json")["body"]
    an = raw(server, "/v1/messages", an_body(stream=True), an_headers())
    kinds = [e["type"] for e in anthropic_events(an.body)]
    assert kinds == ["message_start", "content_block_start", "ping", "error"]
    assert anthropic_events(an.body)[-1]["error"]["type"] == "overloaded_error"


def test_fault_invalid_json_wrong_content_type_and_ok_pacing(
    sim: Sim, server: BackgroundServer
) -> None:
    sim.faults.push(
        Fault("invalid_json"),
        Fault("wrong_content_type"),
        Fault("ok", n_chunks=3, chunk_delay_ms=40),
    )
    broken = raw(server, "/v1/chat/completions", oa_body(), oa_headers())
    assert broken.status == 200 and broken.headers["content-type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        broken.json()
    html = raw(server, "/v1/messages", an_body(), an_headers())
    assert html.status == 200 and html.headers["content-type"].startswith("text/html")
    paced = raw(server, "/v1/chat/completions", oa_body(stream=True), oa_headers())
    chunks = openai_chunks(paced.body)
    assert len(chunks) == 5  # role, three pieces, finish
    assert paced.elapsed_s >= 4 * 0.04


def test_fault_no_usage_answers_without_any_usage(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(*[Fault("no_usage")] * 4)
    body = raw(server, "/v1/chat/completions", oa_body(), oa_headers()).json()
    assert body["choices"][0]["message"]["content"] and "usage" not in body
    assert "usage" not in raw(server, "/v1/messages", an_body(), an_headers()).json()
    options = {"stream_options": {"include_usage": True}}
    streamed = raw(server, "/v1/chat/completions", oa_body(stream=True, **options), oa_headers())
    chunks = [orjson.loads(e.data) for e in iter_events(streamed.body) if e.data != b"[DONE]"]
    assert chunks[-1]["choices"] and not any(c.get("usage") for c in chunks)
    events = [
        orjson.loads(e.data)
        for e in iter_events(raw(server, "/v1/messages", an_body(stream=True), an_headers()).body)
    ]
    delta = next(e for e in events if e["type"] == "message_delta")
    assert "usage" not in delta and events[-1]["type"] == "message_stop"


def test_fault_hang_until_client_leaves(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("hang"))
    result = raw(server, "/v1/chat/completions", oa_body(), oa_headers(), timeout=0.3)
    assert isinstance(result.error, TimeoutError)
    (record,) = sim.wait_for(lambda rs: bool(rs) and rs[0].done, timeout=3)
    assert record.disconnected and record.fault == "hang"


def test_client_disconnect_mid_stream_is_recorded(sim: Sim, server: BackgroundServer) -> None:
    sim.configure(chunk_delay_ms=50, n_chunks=20)
    result = raw(server, "/v1/messages", an_body(stream=True), an_headers(), timeout=0.3)
    assert isinstance(result.error, TimeoutError) and b"message_start" in result.body
    (record,) = sim.wait_for(lambda rs: bool(rs) and rs[0].done, timeout=3)
    assert record.disconnected and record.status == 200


def test_fault_scoping(sim: Sim, server: BackgroundServer) -> None:
    sim.faults.push(Fault("status", status=500, path="/v1/messages"), Fault("status", status=503))
    assert (
        raw(server, "/v1/models", headers=oa_headers()).status == 200
    )  # unscoped: completions only
    assert raw(server, "/v1/chat/completions", oa_body(), oa_headers()).status == 503
    assert raw(server, "/v1/messages", an_body(), an_headers()).status == 500
    sim.faults.push(Fault("status", status=500, path="/v1/models"))
    assert raw(server, "/v1/models", headers=oa_headers()).status == 500
    assert len(sim.faults) == 0


def test_control_api(sim: Sim, server: BackgroundServer) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession(server.url) as s:
            faults = [
                {"kind": "status", "status": 429, "headers": {"retry-after": "1"}},
                {"kind": "reset"},
            ]
            async with s.post("/_sim/faults", json=faults) as r:
                assert (r.status, await r.json()) == (200, {"queued": 2})
            async with s.get("/_sim/faults") as r:
                assert [f["kind"] for f in (await r.json())["faults"]] == ["status", "reset"]
            async with s.post("/v1/chat/completions", json=oa_body(), headers=oa_headers()) as r:
                assert r.status == 429 and r.headers["retry-after"] == "1"
            async with s.delete("/_sim/faults") as r:
                assert (await r.json()) == {"cleared": 1}
            async with s.post("/_sim/faults", json={"kind": "explode"}) as r:
                assert r.status == 400
            async with s.get("/_sim/received") as r:
                summary = await r.json()
            assert summary["count"] == 1
            (req,) = summary["requests"]
            assert req["headers"]["authorization"] == "<redacted>" and req["status"] == 429
            assert req["json"]["model"] == "gpt-4o" and req["fault"] == "status"
            async with s.patch("/_sim/config", json={"n_chunks": 2}) as r:
                assert (await r.json())["n_chunks"] == 2
            async with s.delete("/_sim/received") as r:
                assert r.status == 200

    asyncio.run(go())
    assert sim.received == [] and sim.config.n_chunks == 2


def test_records_are_bounded_and_waits_time_out(sim: Sim, server: BackgroundServer) -> None:
    sim.configure(max_records=2)
    for word in ("one", "two", "three"):
        raw(server, "/v1/chat/completions", oa_body(word), oa_headers())
    records = sim.wait_for_requests(2, done=True)
    assert [r.json["messages"][0]["content"] for r in records] == ["two", "three"]
    assert records[0].t < records[1].t and all(r.status == 200 for r in records)
    with pytest.raises(TimeoutError):
        sim.wait_for(lambda rs: len(rs) > 2, timeout=0.05)
    found = asyncio.run(sim.wait_for_async(lambda rs: len(rs) == 2, timeout=1))
    assert len(found) == 2


def test_validation_follows_the_kit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Sim().config.validate is True  # the kit sits beside the repository
    monkeypatch.setenv("SIM_VENDOR_KIT", str(tmp_path))
    assert Sim().config.validate is False
    with pytest.raises(FileNotFoundError):
        Sim(validate=True)


# --- the runner and the CLI --------------------------------------------------------------------


def test_background_server_runs_async_factories_and_cleans_up() -> None:
    events: list[str] = []

    async def factory() -> web.Application:
        app = web.Application()

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hi")

        async def cleanup(app: web.Application) -> None:
            events.append("cleanup")

        app.router.add_get("/", hello)
        app.on_cleanup.append(cleanup)
        return app

    with BackgroundServer(factory) as srv:
        assert srv.port > 0 and raw(srv, "/").body == b"hi"
    assert events == ["cleanup"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(OSError):
            BackgroundServer(factory, port=held.getsockname()[1]).start()
    assert 0 < free_port() < 65536


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "proxy.sim",
        "--port",
        "0",
        "--no-validate",
        "--openai-key",
        OPENAI_KEY,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("proxy.sim listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        client = openai_client(url + "/v1", OPENAI_KEY)
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "say: pong"}]
        )
        assert reply.choices[0].message.content == "pong"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
