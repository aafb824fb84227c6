"""The official openai SDK through the real gateway to the simulated OpenAI upstream."""

from __future__ import annotations

from decimal import Decimal

import openai
import orjson
import pytest

from proxy.pricing import Price, Usage, cost, format_usd
from tests.conftest import CLIENT_KEY, OPENAI_KEY, wait_until
from tests.http import get, post

# (model, input $/1k, output $/1k) straight from the pricing table.
TABLE = [
    ("gpt-4", "0.030", "0.060"),
    ("gpt-4-turbo", "0.010", "0.030"),
    ("gpt-3.5-turbo", "0.0005", "0.0015"),
    ("o1-mini", "0.003", "0.012"),
]


def expected_cost(prices: tuple[str, str], usage: Usage) -> Decimal:
    return cost(Price(Decimal(prices[0]), Decimal(prices[1])), usage)


@pytest.mark.parametrize(("model", "price_in", "price_out"), TABLE)
def test_non_stream_headers_and_exact_cost(gateway, sim, model, price_in, price_out):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Tell me about sidecars."}]
    )
    reply = raw.parse()
    usage = Usage.from_openai(reply.usage.model_dump())
    amount = expected_cost((price_in, price_out), usage)
    assert raw.headers["x-llm-provider"] == "openai"
    assert raw.headers["x-llm-model"] == sim.completions()[-1].model
    assert raw.headers["x-llm-input-tokens"] == str(usage.prompt_tokens) != "0"
    assert raw.headers["x-llm-output-tokens"] == str(usage.completion_tokens) != "0"
    assert raw.headers["x-llm-cost-usd"] == format_usd(amount)
    assert raw.headers["x-llm-attempts"] == "1"
    assert float(raw.headers["x-llm-overhead-ms"]) >= 0
    assert reply.usage.model_extra["cost"] == float(format_usd(amount))
    assert reply.choices[0].message.content


def test_request_id_echoed_and_passed_upstream(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "req-from-client-1"},
    )
    assert raw.headers["x-request-id"] == "req-from-client-1"
    assert sim.completions()[-1].headers["x-request-id"] == "req-from-client-1"
    fresh = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert fresh.headers["x-request-id"].startswith("req_")


def test_stream_with_usage_delivers_cost_at_the_end(gateway, sim):
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "say: one two three four five"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    usage = Usage.from_openai(final.usage.model_dump())
    assert final.usage.model_extra["cost"] == float(
        format_usd(expected_cost(("0.0025", "0.010"), usage))
    )
    assert sim.completions()[-1].json["stream_options"] == {"include_usage": True}


def test_stream_without_usage_request_has_no_usage_chunk_but_upstream_was_asked(gateway, sim):
    chunks = list(
        gateway.openai().chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hello"}]
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sim.completions()[-1].json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "model, provider", [("gpt-4o", "openai"), ("claude-3.5-sonnet", "anthropic")]
)
def test_finished_streams_leave_their_upstream_connection_reusable(gateway, model, provider):
    """A stream read to its end (terminator included) hands its connection back: streams in a
    row pay one TCP (and, with real vendors, TLS) handshake, not one each."""
    pool = gateway.state.pools.upstreams()[provider]
    client = gateway.openai()

    def stream_once() -> None:
        chunks = client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        assert list(chunks)
        wait_until(lambda: pool.idle_count >= 1)  # released once the handler has finished

    stream_once()
    before = pool.connects
    for _ in range(3):
        stream_once()
    assert pool.connects == before


def test_stream_headers_known_at_start(gateway):
    with gateway.openai().chat.completions.with_streaming_response.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}]
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-llm-provider"] == "openai"
        assert response.headers["x-llm-attempts"] == "1"
        assert b"[DONE]" in b"".join(response.iter_bytes())


def test_alias_resolves_to_the_model_and_its_price(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt4", messages=[{"role": "user", "content": "alias please"}]
    )
    usage = Usage.from_openai(raw.parse().usage.model_dump())
    assert sim.completions()[-1].model == "gpt-4"
    assert raw.headers["x-llm-cost-usd"] == format_usd(expected_cost(("0.030", "0.060"), usage))


def test_models_list_has_models_and_aliases(gateway):
    ids = {m.id for m in gateway.openai().models.list()}
    assert {"gpt-4", "gpt4", "gpt-4o", "claude-3-5-sonnet-20241022", "claude-3.5-sonnet"} <= ids


def test_unknown_model_is_404_without_upstream_call(gateway, sim):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.openai().chat.completions.create(
            model="gpt-99", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["type"] == "model_not_found"
    assert caught.value.response.headers["x-llm-error"] == "model_not_found"
    assert sim.completions() == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"model": "gpt-4o"}', "messages"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": 1}',
            "stream",
        ),
    ],
)
def test_malformed_request_is_400_naming_the_field(gateway, sim, body, param):
    reply = post(f"{gateway.url}/v1/chat/completions", body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request" and error["param"] == param
    assert reply.headers["x-llm-error"] == "invalid_request"
    assert sim.completions() == []


def test_oversized_body_is_413_without_upstream_call(gateway_factory, sim):
    gateway = gateway_factory({"server": {"max_body_bytes": 2048}})
    big = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 4096}]})
    reply = post(f"{gateway.url}/v1/chat/completions", big)
    assert reply.status_code == 413
    assert reply.json()["error"]["type"] == "invalid_request"
    assert sim.completions() == []


UPSTREAM_ERRORS = [
    # (status, sample, contract type, our status, retried)
    (400, None, "invalid_request", 400, False),
    (401, None, "invalid_api_key", 401, False),
    (404, None, "model_not_found", 404, False),
    (429, None, "rate_limit_exceeded", 429, True),
    (429, "429-insufficient_quota", "rate_limit_exceeded", 429, False),
    (500, None, "provider_error", 502, True),
    (503, None, "provider_error", 502, True),
]


@pytest.mark.parametrize(("status", "sample_name", "kind", "ours", "retried"), UPSTREAM_ERRORS)
def test_upstream_error_statuses_map_to_the_taxonomy(
    gateway, sim, status, sample_name, kind, ours, retried
):
    from proxy.sim.faults import Fault

    for _ in range(3):  # enough for every attempt (max_retries: 2 in the test config)
        sim.sim.faults.push(
            Fault(
                kind="status",
                status=status,
                sample=sample_name,
                headers={"retry-after": "0"} if status == 429 else {},
            )
        )
    reply = post(
        f"{gateway.url}/v1/chat/completions",
        orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
    )
    assert reply.status_code == ours
    body = reply.json()
    assert body["error"]["type"] == kind and body["error"]["message"]
    assert reply.headers["x-llm-error"] == kind
    assert reply.headers["x-llm-attempts"] == ("3" if retried else "1")
    assert len(sim.completions()) == (3 if retried else 1)
    if status == 429:
        assert reply.headers["retry-after"] == "0"


def test_client_authorization_never_goes_upstream(gateway, sim):
    gateway.openai().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-api-key": CLIENT_KEY},
    )
    seen = sim.completions()[-1].headers
    assert seen["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_KEY not in orjson.dumps(dict(seen)).decode()


def test_canary_key_never_in_error_bodies_or_logs(gateway_factory, sim, caplog):
    canary = "sk-CANARY-9f8e7d6c5b4a"
    gateway = gateway_factory(environ={"OPENAI_API_KEY": canary})
    with caplog.at_level("DEBUG"):
        with pytest.raises(openai.AuthenticationError) as caught:
            gateway.openai().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        status = get(f"{gateway.url}/status").text
    assert caught.value.body["type"] == "invalid_api_key"
    assert canary not in caught.value.response.text
    assert canary not in status
    assert canary not in caplog.text


def test_client_disconnect_mid_stream_closes_the_upstream_request(gateway, sim):
    sim.sim.configure(chunk_delay_ms=50, n_chunks=40)
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a long story"}]
    )
    first = next(iter(stream))
    assert first.choices
    stream.close()  # the client goes away after its first chunk
    record = wait_until(lambda: [r for r in sim.completions() if r.done], timeout=5)[-1]
    assert record.disconnected
    wait_until(lambda: gateway.state.streams_open == 0 and gateway.state.in_flight == 0)

