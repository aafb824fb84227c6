"""Gemini on Vertex AI through the real gateway: service-account tokens from a key file made
here with a fresh RSA key, fetched from the simulator's token endpoint (which verifies the
RS256-signed JWT with the matching public key), shared by requests, refreshed before expiry,
re-read when the key file changes; token failures mapped onto the taxonomy."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.pricing import Price, Usage, cost, format_usd
from proxy.sim.runner import free_port
from tests.conftest import wait_until
from tests.gcp import ServiceAccount, write_key_file

MODEL = "vertex-flash"
PRICE = Price(Decimal("0.0003"), Decimal("0.0025"))
VERTEX_PATH = "/v1/projects/sim-project/locations/us-central1/publishers/google/models/"
WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def vertex_config(sim_url: str, key: ServiceAccount) -> dict[str, Any]:
    return {
        "providers": {
            "vertex": {
                "type": "vertex_ai",
                "base_url": sim_url,
                "project": "sim-project",
                "location": "us-central1",
                "credentials_file": str(key.path),
            }
        },
        "models": {
            MODEL: {
                "provider": "vertex",
                "upstream_model": "gemini-2.5-flash",
                "price": {"input_per_1k": 0.0003, "output_per_1k": 0.0025},
            }
        },
    }


@pytest.fixture
def key(sim, tmp_path: Path) -> ServiceAccount:
    account = write_key_file(tmp_path / "sa.json", f"{sim.url}/token")
    sim.sim.configure(vertex_accounts=(account.account,))
    return account


@pytest.fixture
def vertex(gateway_factory, sim, key):
    return gateway_factory(vertex_config(sim.url, key))


def vertex_calls(sim) -> list[Any]:
    return [r for r in sim.sim.received if r.path.startswith(VERTEX_PATH)]


def ask(gateway, text: str = "say: hello vertex", **kwargs: Any) -> Any:
    return gateway.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kwargs
    )


def test_text_with_a_bearer_token_and_exact_cost(vertex, sim):
    raw = ask(vertex)
    reply = raw.parse()
    assert reply.choices[0].message.content == "hello vertex"
    assert raw.headers["x-llm-provider"] == "vertex"
    usage = Usage(
        prompt_tokens=reply.usage.prompt_tokens, completion_tokens=reply.usage.completion_tokens
    )
    assert raw.headers["x-llm-cost-usd"] == format_usd(cost(PRICE, usage))
    (record,) = vertex_calls(sim)
    assert record.path == VERTEX_PATH + "gemini-2.5-flash:generateContent"
    assert record.headers["authorization"].startswith("Bearer ya29.sim-")
    assert "x-goog-api-key" not in record.headers


def test_streams_through_both_sdks(vertex, sim):
    chunks = list(
        vertex.openai().chat.completions.create(
            model=MODEL,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "say: streamed from vertex"}],
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "streamed from vertex"
    )
    assert chunks[-1].usage.model_extra["cost"] > 0
    with vertex.anthropic().messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "say: anthropic too"}]
    ) as stream:
        assert "".join(stream.text_stream) == "anthropic too"
    assert all(":streamGenerateContent" in r.path for r in vertex_calls(sim))


def test_the_token_is_fetched_once_for_concurrent_and_later_requests(vertex, sim):
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: ask(vertex, f"say: request {i}"), range(8)))
    assert all(r.status_code == 200 for r in replies)
    ask(vertex)
    assert sim.sim.tokens.fetches == 1
    assert len({r.headers["authorization"] for r in vertex_calls(sim)}) == 1


def test_a_token_close_to_expiry_is_refreshed_before_use(vertex, sim):
    sim.sim.configure(vertex_token_ttl_s=60)  # under the gateway's 5-minute refresh margin
    for _ in range(3):
        assert ask(vertex).status_code == 200
    assert sim.sim.tokens.fetches == 3
    assert len({r.headers["authorization"] for r in vertex_calls(sim)}) == 3


def test_a_rotated_key_file_is_read_again(vertex, sim, key, tmp_path):
    ask(vertex)
    rotated = write_key_file(tmp_path / "new.json", f"{sim.url}/token", name="rotated-account")
    sim.sim.configure(vertex_accounts=(key.account, rotated.account))
    key.path.write_text(rotated.path.read_text())  # the mounted secret changes in place
    wait_until(lambda: ask(vertex).status_code == 200 and sim.sim.tokens.fetches == 2, timeout=10)


def test_tools_round_trip_without_ids_on_v1(vertex, sim):
    client = vertex.openai()
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Lima?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    (call,) = first.choices[0].message.tool_calls
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "19C, cloudy"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert "19C, cloudy" in second.choices[0].message.content
    sent = vertex_calls(sim)[-1].json["contents"]
    assert "id" not in sent[1]["parts"][0]["functionCall"]
    assert "id" not in sent[2]["parts"][0]["functionResponse"]


@pytest.mark.parametrize("status", [400, 401])
def test_a_refusing_token_endpoint_is_invalid_api_key(vertex, sim, status):
    sim.sim.configure(vertex_token_error=status)
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(vertex)
    assert caught.value.response.headers["x-llm-error"] == "invalid_api_key"
    assert "invalid_grant" in str(caught.value)
    assert vertex_calls(sim) == []


def test_an_unreachable_token_endpoint_is_http_error(gateway_factory, sim, tmp_path):
    account = write_key_file(tmp_path / "sa.json", f"http://127.0.0.1:{free_port()}/token")
    gateway = gateway_factory(vertex_config(sim.url, account))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gateway)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-llm-error"] == "http_error"
    assert caught.value.response.headers["x-llm-attempts"] == "3"  # retried like any transport


def test_an_unreadable_key_file_is_invalid_api_key(gateway_factory, sim, tmp_path):
    missing = ServiceAccount(tmp_path / "absent.json", "x", "")
    gateway = gateway_factory(vertex_config(sim.url, missing))
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(gateway)
    assert "absent.json" in str(caught.value)


def test_a_token_vertex_stops_accepting_is_dropped_after_its_401(vertex, sim):
    ask(vertex)
    sim.sim.tokens.issued.clear()  # revoked upstream before its expiry
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(vertex)
    assert caught.value.response.headers["x-llm-error"] == "invalid_api_key"
    assert ask(vertex).status_code == 200  # the next request fetched a new token
    assert sim.sim.tokens.fetches == 2


def test_health_fetches_a_token_and_calls_the_location(vertex, sim):
    with urllib.request.urlopen(f"{vertex.url}/health/providers", timeout=10) as reply:
        body = json.loads(reply.read())
    assert body["vertex"]["healthy"] is True, body["vertex"]
    record = [
        r for r in sim.sim.received if r.path == "/v1/projects/sim-project/locations/us-central1"
    ]
    assert record and record[-1].headers["authorization"].startswith("Bearer ")
