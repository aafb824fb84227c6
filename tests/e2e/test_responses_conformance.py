"""``POST /v1/responses`` answers what ``schema/openapi.json`` declares: success (JSON and
stream) passed through and translated, upstream failures, gateway refusals, a stream that
fails after it began."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.sim.faults import Fault
from tests.e2e.test_openapi_conformance import (
    ANTHROPIC_MODEL,
    NO_RETRY,
    OPENAI_MODEL,
    UPSTREAM_FAULTS,
    call,
    conform,
)

RESPONSES = "/v1/responses"
MODELS = [OPENAI_MODEL, ANTHROPIC_MODEL]


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "input": "Name a sidecar.", **extra}


@pytest.mark.parametrize("model", MODELS)
def test_non_streaming_response_conforms(gateway, model):
    reply = call(gateway, RESPONSES, body(model))
    assert reply.status_code == 200
    answer = conform(RESPONSES, "post", reply)
    usage = answer["usage"]
    assert usage["cost"] == float(reply.headers["x-llm-cost-usd"])
    assert reply.headers["x-llm-input-tokens"] == str(usage["input_tokens"])
    assert reply.headers["x-llm-output-tokens"] == str(usage["output_tokens"])


@pytest.mark.parametrize("model", MODELS)
def test_stream_conforms_and_completes_with_usage_and_cost(gateway, model):
    reply = call(gateway, RESPONSES, body(model, stream=True))
    assert reply.status_code == 200
    events = conform(RESPONSES, "post", reply)
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["cost"] > 0
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("fault", "status", "kind"), UPSTREAM_FAULTS, ids=[f"{s}-{k}" for _, s, k in UPSTREAM_FAULTS]
)
@pytest.mark.parametrize("model", MODELS)
def test_upstream_failures_conform(gateway_factory, sim, model, fault, status, kind):
    gateway = gateway_factory(NO_RETRY)
    sim.sim.faults.push(fault)
    reply = call(gateway, RESPONSES, body(model))
    assert reply.status_code == status
    conform(RESPONSES, "post", reply)
    assert reply.headers["x-llm-error"] == kind


@pytest.mark.parametrize(
    ("case", "status"), [("malformed", 400), ("unknown model", 404), ("stateful", 400)]
)
def test_gateway_refusals_conform_without_an_upstream_call(gateway, sim, case, status):
    sent = {
        "malformed": {"model": OPENAI_MODEL, "input": 5},
        "unknown model": body("no-such-model"),
        "stateful": body(ANTHROPIC_MODEL, previous_response_id="resp_1"),
    }[case]
    reply = call(gateway, RESPONSES, sent)
    assert reply.status_code == status
    error = conform(RESPONSES, "post", reply)["error"]
    assert reply.headers["x-llm-error"] == error["type"]
    assert not sim.completions()


@pytest.mark.parametrize("kind", ["stream_error", "stream_cut"])
@pytest.mark.parametrize("model", MODELS)
def test_error_after_the_stream_began_conforms(gateway, sim, model, kind):
    sim.sim.faults.push(Fault(kind=kind, after_events=3))
    reply = call(gateway, RESPONSES, body(model, stream=True))
    assert reply.status_code == 200
    events = conform(RESPONSES, "post", reply)
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
