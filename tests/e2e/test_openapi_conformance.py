"""The real gateway answers what ``schema/openapi.json`` declares.

Every endpoint is called for real (through the simulated vendors) and each answer is checked
against the document: the status is one it declares, the media type one that status declares,
the body matches that media type's schema (each SSE event's JSON its ``x-itemSchema``), every
header it marks required is present and every documented header that is present matches its
schema. Success and error answers, both dialects, all four client/vendor pairings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from proxy.sim.faults import Fault
from proxy.sim.runner import free_port
from proxy.sse import iter_events
from tests.conftest import CLIENT_KEY, Gateway
from tests.http import Reply, get, post, request

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"
BASE = SCHEMA_DIR.as_uri() + "/"
DOC: dict[str, Any] = orjson.loads((SCHEMA_DIR / "openapi.json").read_bytes())
REGISTRY: Registry = Registry().with_resources(
    (BASE + path.name, DRAFT202012.create_resource(orjson.loads(path.read_bytes())))
    for path in SCHEMA_DIR.glob("*.json")
)
CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"
NO_RETRY = {"retry": {"max_retries": 0}}
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o", "claude-3-haiku"  # neither has fallbacks


# --- checking an answer against the document ----------------------------------------------------


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` in openapi.json, every $ref resolvable."""
    return Draft202012Validator({"$ref": f"{BASE}openapi.json#{pointer}"}, registry=REGISTRY)


def _resolve(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A local ``$ref`` followed: (its pointer or None, the object)."""
    if "$ref" not in node:
        return None, node
    pointer = node["$ref"].removeprefix("#")
    target: Any = DOC
    for token in pointer.strip("/").split("/"):
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return pointer, target


def declared(path: str, method: str, status: int) -> tuple[str, dict[str, Any]]:
    """The pointer and object of the response the doc declares for this status."""
    responses = DOC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered undocumented {status}"
    pointer, response = _resolve(responses[str(status)])
    return pointer or f"/paths/{_escape(path)}/{method}/responses/{status}", response


def assert_valid(pointer: str, instance: Any) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in _validator(pointer).iter_errors(instance)
    ]
    assert not errors, (pointer, errors[:5])


def check_headers(response: dict[str, Any], reply: Reply) -> None:
    for name, node in response.get("headers", {}).items():
        _, header = _resolve(node)
        value = reply.headers.get(name)
        if header.get("required"):
            assert value is not None, f"required header {name} missing"
        if value is not None:
            errors = list(Draft202012Validator(header["schema"]).iter_errors(value))
            assert not errors, (name, value, errors[0].message)


def conform(path: str, method: str, reply: Reply) -> Any:
    """Check ``reply`` against the doc; return its JSON body, SSE event payloads or text."""
    pointer, response = declared(path, method, reply.status_code)
    check_headers(response, reply)
    media = reply.headers["content-type"].split(";")[0].strip()
    assert media in response["content"], f"{reply.status_code} {media} is not documented"
    where = f"{pointer}/content/{_escape(media)}"
    if media == "text/event-stream":
        return _stream_events(where, reply.content)
    if media == "application/json":
        body = reply.json()
        assert_valid(f"{where}/schema", body)
        return body
    assert_valid(f"{where}/schema", reply.text)
    return reply.text


def _stream_events(where: str, raw: bytes) -> list[Any]:
    events = list(iter_events(raw))
    assert events, "an empty stream"
    payloads = []
    for index, event in enumerate(events):
        if event.data == b"[DONE]":
            assert index == len(events) - 1, "[DONE] must end the stream"
            continue
        payload = orjson.loads(event.data)
        assert_valid(f"{where}/x-itemSchema", payload)
        if event.name is not None:
            assert event.name == payload["type"], "the SSE event name is the payload's type"
        payloads.append(payload)
    return payloads


# --- calling the gateway ------------------------------------------------------------------------


def chat_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Name a sidecar."}], **extra}


def messages_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"max_tokens": 64, **chat_body(model), **extra}


BODIES: dict[str, Callable[..., dict[str, Any]]] = {CHAT: chat_body, MESSAGES: messages_body}


def call(gateway: Gateway, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return post(gateway.url + path, orjson.dumps(body), headers)


def assert_cost_headers_match(reply: Reply, usage: dict[str, Any], path: str) -> None:
    assert usage["cost"] == float(reply.headers["x-llm-cost-usd"])
    inputs = usage["prompt_tokens"] if path == CHAT else usage["input_tokens"]
    outputs = usage["completion_tokens"] if path == CHAT else usage["output_tokens"]
    assert reply.headers["x-llm-input-tokens"] == str(inputs)
    assert reply.headers["x-llm-output-tokens"] == str(outputs)


# --- the document covers the app ----------------------------------------------------------------


def test_every_served_route_is_documented_and_every_documented_one_served(gateway):
    served = {
        (route.resource.canonical, route.method.lower())
        for route in gateway.server.app.router.routes()
        if route.method != "HEAD"
    }
    documented = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert served == documented


# --- completions: success -----------------------------------------------------------------------

PAIRINGS = [
    (CHAT, OPENAI_MODEL),
    (CHAT, ANTHROPIC_MODEL),
    (MESSAGES, ANTHROPIC_MODEL),
    (MESSAGES, OPENAI_MODEL),
]


@pytest.mark.parametrize(("path", "model"), PAIRINGS)
def test_non_streaming_completion_conforms(gateway, path, model):
    reply = call(gateway, path, BODIES[path](model), {"x-request-id": "conformance-1"})
    assert reply.status_code == 200
    body = conform(path, "post", reply)
    assert reply.headers["x-request-id"] == "conformance-1"
    assert_cost_headers_match(reply, body["usage"], path)


@pytest.mark.parametrize(("path", "model"), PAIRINGS)
def test_stream_conforms_and_ends_with_usage_and_cost(gateway, path, model):
    extra = {"stream_options": {"include_usage": True}} if path == CHAT else {}
    reply = call(gateway, path, BODIES[path](model, stream=True, **extra))
    assert reply.status_code == 200
    events = conform(path, "post", reply)
    if path == CHAT:
        costed = [e["usage"] for e in events if e.get("usage")]
        assert reply.content.rstrip().endswith(b"data: [DONE]")
    else:
        costed = [e["usage"] for e in events if e["type"] == "message_delta"]
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert len(costed) == 1 and costed[0]["cost"] > 0


def test_stream_without_include_usage_conforms_and_has_no_usage_chunk(gateway):
    reply = call(gateway, CHAT, chat_body(OPENAI_MODEL, stream=True))
    events = conform(CHAT, "post", reply)
    assert all(event.get("usage") is None for event in events)


# --- completions: errors ------------------------------------------------------------------------

UPSTREAM_FAULTS = [
    (Fault(kind="status", status=401), 401, "invalid_api_key"),
    (Fault(kind="status", status=404), 404, "model_not_found"),
    (Fault(kind="status", status=429, headers={"retry-after": "7"}), 429, "rate_limit_exceeded"),
    (Fault(kind="status", status=500), 502, "provider_error"),
    (Fault(kind="status", status=529), 502, "provider_error"),  # overloaded_error
    (Fault(kind="reset"), 502, "http_error"),
    (Fault(kind="status", status=504), 504, "timeout"),
]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize(
    ("fault", "status", "kind"), UPSTREAM_FAULTS, ids=[f"{s}-{k}" for _, s, k in UPSTREAM_FAULTS]
)
def test_upstream_failures_conform(gateway_factory, sim, path, fault, status, kind):
    gateway = gateway_factory(NO_RETRY)
    sim.sim.faults.push(fault)
    model = OPENAI_MODEL if path == CHAT else ANTHROPIC_MODEL
    reply = call(gateway, path, BODIES[path](model))
    assert reply.status_code == status
    conform(path, "post", reply)
    assert reply.headers["x-llm-error"] == kind
    if status == 429:
        assert reply.headers["retry-after"] == "7"


GATEWAY_VERDICTS = [
    ("malformed", 400, "invalid_request"),
    ("unknown model", 404, "model_not_found"),
    ("oversized", 413, "invalid_request"),
]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize(("case", "status", "kind"), GATEWAY_VERDICTS)
def test_gateway_refusals_conform_without_an_upstream_call(
    gateway_factory, sim, path, case, status, kind
):
    gateway = gateway_factory({"server": {"max_body_bytes": 4096}})
    body = {
        "malformed": {**BODIES[path](OPENAI_MODEL), "messages": []},
        "unknown model": BODIES[path]("no-such-model"),
        "oversized": BODIES[path](OPENAI_MODEL, metadata={"pad": "x" * 8192}),
    }[case]
    reply = call(gateway, path, body)
    assert reply.status_code == status
    conform(path, "post", reply)
    assert reply.headers["x-llm-error"] == kind
    assert not sim.completions()


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_draining_refusal_conforms(gateway, path):
    gateway.state.draining = True  # what drain() sets on SIGTERM; the listener stays open
    reply = call(gateway, path, BODIES[path](OPENAI_MODEL))
    assert reply.status_code == 503
    conform(path, "post", reply)
    assert reply.headers["x-llm-error"] == "unavailable"


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        (CHAT, Fault(kind="stream_error", after_events=3)),  # the upstream's own error event
        (CHAT, Fault(kind="stream_cut", after_events=3)),  # the gateway's error event
        (MESSAGES, Fault(kind="stream_error", after_events=3)),
        (MESSAGES, Fault(kind="stream_cut", after_events=3)),
    ],
    ids=["chat-upstream-error", "chat-cut", "messages-upstream-error", "messages-cut"],
)
def test_error_after_the_stream_began_conforms(gateway, sim, path, fault):
    sim.sim.faults.push(fault)
    model = OPENAI_MODEL if path == CHAT else ANTHROPIC_MODEL
    extra = {"stream_options": {"include_usage": True}} if path == CHAT else {}
    reply = call(gateway, path, BODIES[path](model, stream=True, **extra))
    assert reply.status_code == 200
    events = conform(path, "post", reply)
    assert "error" in events[-1]
    assert b"[DONE]" not in reply.content


# --- inbound auth -------------------------------------------------------------------------------

AUTH = {"server": {"auth": {"tokens_env": ["GATEWAY_TOKEN"], "protect_ops_endpoints": True}}}
TOKEN = "gateway-token-for-conformance"


@pytest.fixture
def guarded(gateway_factory) -> Gateway:
    return gateway_factory(AUTH, environ={"GATEWAY_TOKEN": TOKEN})


@pytest.mark.parametrize(
    ("method", "path", "headers", "shape"),
    [
        ("post", CHAT, {}, "openai"),
        ("post", MESSAGES, {"x-api-key": CLIENT_KEY}, "anthropic"),
        ("get", "/v1/models", {}, "openai"),
        ("get", "/v1/models", {"anthropic-version": "2023-06-01"}, "anthropic"),
        ("get", "/status", {"authorization": f"Bearer {CLIENT_KEY}"}, "openai"),
        ("get", "/metrics", {}, "openai"),
        ("get", "/health/providers", {}, "openai"),
    ],
)
def test_unauthorized_refusals_conform(guarded, method, path, headers, shape):
    if method == "post":
        reply = call(guarded, path, BODIES[path](OPENAI_MODEL), headers)
    else:
        reply = get(guarded.url + path, headers)
    assert reply.status_code == 401
    body = conform(path, method, reply)
    assert reply.headers["x-llm-error"] == "unauthorized"
    assert ("type" in body) == (shape == "anthropic")


def test_an_accepted_token_gets_a_conforming_answer(guarded):
    reply = call(guarded, CHAT, chat_body(OPENAI_MODEL), {"authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200
    conform(CHAT, "post", reply)


# --- models and operations ----------------------------------------------------------------------


@pytest.mark.parametrize("anthropic", [False, True], ids=["openai-list", "anthropic-list"])
def test_models_conform_in_both_formats(gateway, anthropic):
    headers = {"anthropic-version": "2023-06-01"} if anthropic else {}
    body = conform("/v1/models", "get", get(f"{gateway.url}/v1/models", headers))
    assert ("object" in body) != anthropic
    assert {m["id"] for m in body["data"]} >= {OPENAI_MODEL, ANTHROPIC_MODEL}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/status", "/health/providers"])
def test_operations_conform(gateway, path):
    reply = get(gateway.url + path)
    assert reply.status_code == 200
    conform(path, "get", reply)


def test_readyz_while_draining_conforms(gateway):
    gateway.state.draining = True
    reply = get(f"{gateway.url}/readyz")
    assert reply.status_code == 503
    conform("/readyz", "get", reply)


def test_unhealthy_provider_conforms(gateway_factory):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gateway = gateway_factory({"providers": {"openai": {"base_url": dead}}})
    reply = get(f"{gateway.url}/health/providers")
    assert reply.status_code == 503
    body = conform("/health/providers", "get", reply)
    assert body["openai"]["healthy"] is False and body["openai"]["error"]
    assert body["anthropic"]["healthy"] is True


@pytest.mark.parametrize(
    ("accept", "media"),
    [(None, "text/plain"), ("application/openmetrics-text", "application/openmetrics-text")],
)
def test_metrics_conform_and_parse(gateway, accept, media):
    call(gateway, CHAT, chat_body(OPENAI_MODEL))
    reply = request("GET", f"{gateway.url}/metrics", headers={"accept": accept} if accept else {})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(media)
    text = conform("/metrics", "get", reply)
    if media == "text/plain":
        names = {family.name for family in text_string_to_metric_families(text)}
        assert any(name.startswith("llm_edge") for name in names)
