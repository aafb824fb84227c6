"""The benchmark's own parts work: vendor-exact canned bodies, the fake upstream, the floor,
the stream timer, wrk's result line and the report's arithmetic. Fast (a few seconds)."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ttft  # noqa: E402
from benchlib import bodies, nginx, report, wrk  # noqa: E402
from benchlib.procs import Proc, free_port, process_tree, rss_mb, start, stop  # noqa: E402

SCHEMAS = HERE.parents[1] / "proxy" / "sim" / "vendor" / "schemas"
PYTHON = sys.executable


def _validator(relative: str):  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema")
    path = SCHEMAS / relative
    if not path.exists():
        pytest.skip(f"vendor kit not found at {path}")
    return jsonschema.Draft202012Validator(json.loads(path.read_text()))


def _sse_payloads(raw: bytes) -> list[tuple[str | None, bytes]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            out.append((lines.get("event"), lines["data"].encode()))
    return out


def test_canned_responses_match_the_vendor_schemas() -> None:
    _validator("openai/chat.completions.response.schema.json").validate(
        json.loads(bodies.openai_response())
    )
    _validator("anthropic/messages.response.schema.json").validate(
        json.loads(bodies.anthropic_response())
    )
    assert 900 <= len(bodies.openai_response()) <= 1200
    assert 900 <= len(bodies.anthropic_response()) <= 1200


def test_canned_responses_api_answer_and_request_match_the_vendor_schemas() -> None:
    from proxy.sim.schemas import openapi_schema

    for kind, body in (
        ("response", bodies.openai_responses_response()),
        ("request", bodies.requests()["small_responses.json"]),
    ):
        schema = json.loads((SCHEMAS / f"openai/responses.{kind}.schema.json").read_text())
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.Draft202012Validator(openapi_schema(schema)).validate(json.loads(body))


def test_canned_streams_are_vendor_sse_with_50_deltas() -> None:
    chunk = _validator("openai/chat.completions.chunk.schema.json")
    events = _sse_payloads(bodies.openai_stream())
    assert events[-1] == (None, b"[DONE]")
    for _name, data in events[:-1]:
        chunk.validate(json.loads(data))
    event = _validator("anthropic/stream/stream-event.schema.json")
    named = _sse_payloads(bodies.anthropic_stream())
    for name, data in named:
        payload = json.loads(data)
        event.validate(payload)
        assert payload["type"] == name
    deltas = [n for n, _ in named if n == "content_block_delta"]
    assert len(deltas) == bodies.STREAM_CHUNKS == len(events) - 4


def test_request_bodies_have_the_documented_sizes() -> None:
    sizes = {name: len(body) for name, body in bodies.requests().items()}
    assert 250 <= sizes["small_openai.json"] <= 350
    assert 200 * 1024 <= sizes["large_openai.json"] <= 210 * 1024
    _validator("openai/chat.completions.request.schema.json").validate(
        json.loads(bodies.requests()["large_openai.json"])
    )


def test_nginx_quote_escapes_what_nginx_unescapes() -> None:
    assert nginx.quote(b"a'b\\c") == "'a\\'b\\\\c'"
    with pytest.raises(ValueError):
        nginx.quote(b"costs $5")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    pytest.importorskip("aiohttp")
    pytest.importorskip("uvloop")
    logs = tmp_path_factory.mktemp("logs")
    up_port, floor_port = free_port(), free_port()
    upstream = start(
        "upstream", [PYTHON, str(HERE / "fake_upstream.py"), "--port", str(up_port)],
        port=up_port, log_dir=logs, timeout_s=20,
    )  # fmt: skip
    try:
        floor = start(
            "floor",
            [PYTHON, str(HERE / "floor.py"), "--port", str(floor_port),
             "--upstream", f"http://127.0.0.1:{up_port}"],
            port=floor_port, log_dir=logs, timeout_s=20,
        )  # fmt: skip
    except Exception:
        stop(upstream)
        raise
    yield upstream, floor
    stop(floor)
    stop(upstream)


def _post(port: int, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_fake_upstream_serves_the_canned_bodies_byte_exact(servers: tuple[Proc, Proc]) -> None:
    upstream, _ = servers
    canned = bodies.responses()
    for path, (name, content_type) in bodies.ROUTES.items():
        if path == "/v1/models":
            continue
        status, body, headers = _post(upstream.port, path, bodies.requests()["large_openai.json"])
        assert (status, body, headers["content-type"]) == (200, canned[name], content_type)
    assert _post(upstream.port, "/nowhere", b"{}")[0] == 404


def test_floor_relays_json_and_streams(servers: tuple[Proc, Proc]) -> None:
    _, floor = servers
    status, body, headers = _post(
        floor.port, "/v1/chat/completions", bodies.requests()["small_openai.json"]
    )
    assert status == 200 and headers["x-floor"] == "1"
    assert json.loads(body) == json.loads(bodies.openai_response())
    stream_body = bodies.requests()["stream_openai.json"]
    status, body, _ = _post(floor.port, "/stream/v1/chat/completions", stream_body)
    assert (status, body) == (200, bodies.openai_stream())
    assert rss_mb(process_tree(floor.pid)) > 5


def test_stream_timer_measures_through_the_floor(servers: tuple[Proc, Proc]) -> None:
    _, floor = servers
    url = f"http://127.0.0.1:{floor.port}/stream/v1/messages"
    result = asyncio.run(ttft.measure(url, bodies.requests()["stream_anthropic.json"], 5, 1, []))
    assert result["ok"] == 5 == result["count"]
    assert 0 < result["ttfb_ms"]["p50"] <= result["ttft_ms"]["p50"] <= result["total_ms"]["p50"]


def test_wrk_result_line_parses() -> None:
    line = (
        'noise\nBENCH_JSON {"requests":2000,"duration_us":2000000,"bytes":1,'
        '"errors":{"connect":0,"read":0,"write":0,"status":3,"timeout":0},'
        '"latency_us":{"min":90,"mean":120.5,"max":900,"stdev":10.0,'
        '"p50":110,"p90":150,"p99":400,"p999":800}}\n'
    )
    result = wrk.parse(line)
    assert (result.rps, result.errors, result.p50_ms, result.p99_ms) == (1000.0, 3, 0.11, 0.4)


def _target(p50: float, p99: float, rps: float, cpu: float, ttft_ms: float) -> dict:
    run = {"p50_ms": p50, "p90_ms": p50, "p99_ms": p99}
    return {
        "wrk": {"small": {"c1": run, "c32": {**run, "rps": rps, "cpu_us_per_req": cpu}}},
        "streams": {"stream": {"ttft_ms": {"p50": ttft_ms}}},
        "rss_idle_mb": 40.0,
    }


def test_report_added_latency_ratios_and_checks() -> None:
    targets = {
        "direct": _target(0.1, 0.2, 50000, 8, 0.05),
        "floor": _target(0.35, 0.9, 6000, 150, 0.5),
        "ours-1w": _target(0.5, 1.5, 4000, 240, 0.7),
        "ours-2w": _target(0.45, 1.2, 5000, 250, 0.6),
    }
    report.derive(targets)
    assert targets["ours-1w"]["added"]["small"]["c1"]["p50"] == pytest.approx(0.4)
    ratios = report.ratios(targets)
    assert ratios["throughput c32 (small)"]["floor"] == pytest.approx(4000 / 6000)
    verdicts = {c["goal"]: c["met"] for c in report.checks(targets)}
    assert verdicts["added p50, c1, 1 worker <= 0.30 ms"] is False
    assert verdicts["2 workers serve more than 1 (c32)"] is True
    assert verdicts["throughput c32 >= 40x LiteLLM"] is None
    assert "MISSED" in report.check_table(report.checks(targets), markdown=True)
