"""Inbound auth: missing, wrong and right tokens on both completion endpoints with the official
SDKs, the open and protected ops endpoints, hot-reloaded tokens, the constant-time compare, and
the CLI's warning for a non-loopback bind without auth."""

from __future__ import annotations

import hmac
import subprocess
import sys
import threading

import anthropic
import openai
import pytest

from proxy.config.build import load_snapshot
from tests import sdk
from tests.conftest import ENVIRON, OPENAI_KEY, REPO, deep_merge, gateway_config
from tests.http import get, post

TOKENS = {"EDGE_TOKEN_A": "tok-first-3a7c", "EDGE_TOKEN_B": "tok-second-9e21"}
AUTH = {"server": {"auth": {"tokens_env": ["EDGE_TOKEN_A", "EDGE_TOKEN_B"]}}}
PROTECTED_OPS = {"server": {"auth": {"protect_ops_endpoints": True}}}
MESSAGES = [{"role": "user", "content": "hi"}]
HAIKU = "claude-3-5-haiku-20241022"
OPS = ("/metrics", "/status", "/health/providers")


@pytest.fixture
def secured(gateway_factory):
    return gateway_factory(AUTH, environ=TOKENS)


def openai_client(gateway, key: str) -> openai.OpenAI:
    return sdk.openai_client(f"{gateway.url}/v1", key)


def anthropic_client(gateway, key: str, bearer: bool = False) -> anthropic.Anthropic:
    """``bearer``: the key as ``Authorization: Bearer`` (auth_token) instead of ``x-api-key``."""
    credential = {"auth_token": key} if bearer else {"api_key": key}
    return sdk.anthropic_client(gateway.url, **credential)


def test_openai_endpoint_missing_wrong_and_right_token(secured, sim):
    url = f"{secured.url}/v1/chat/completions"
    missing = post(url, b'{"model": "gpt-4o", "messages": []}')
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "unauthorized"
    assert missing.headers["x-llm-error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["x-request-id"] and missing.headers["x-llm-attempts"] == "0"
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client(secured, "tok-wrong").chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    assert caught.value.body["type"] == "unauthorized"
    assert "tok-wrong" not in caught.value.response.text
    assert sim.completions() == []
    for token in TOKENS.values():
        reply = openai_client(secured, token).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
        assert reply.choices[0].message.content
    streamed = openai_client(secured, TOKENS["EDGE_TOKEN_B"]).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    assert list(streamed)[-1].choices[0].finish_reason == "stop"


def test_anthropic_endpoint_missing_wrong_and_right_token(secured, sim):
    missing = post(f"{secured.url}/v1/messages", b"{}", {"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    assert missing.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": missing.json()["error"]["message"]},
    }
    assert missing.headers["x-llm-error"] == "unauthorized"
    for bearer in (False, True):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            anthropic_client(secured, "tok-wrong", bearer).messages.create(
                model=HAIKU, max_tokens=16, messages=MESSAGES
            )
        assert caught.value.body["error"]["type"] == "authentication_error"
    assert sim.completions() == []
    for bearer in (False, True):  # x-api-key (older SDKs) and Authorization: Bearer
        reply = anthropic_client(secured, TOKENS["EDGE_TOKEN_A"], bearer).messages.create(
            model=HAIKU, max_tokens=16, messages=MESSAGES
        )
        assert reply.content[0].text


def test_client_token_never_goes_upstream(secured, sim):
    token = TOKENS["EDGE_TOKEN_A"]
    openai_client(secured, token).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    anthropic_client(secured, token).messages.create(model=HAIKU, max_tokens=16, messages=MESSAGES)
    to_openai, to_anthropic = sim.completions()
    assert to_openai.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    for seen in (to_openai, to_anthropic):
        assert token not in repr(dict(seen.headers))


def test_models_list_needs_a_token_in_either_dialect(secured):
    assert get(f"{secured.url}/v1/models").json()["error"]["type"] == "unauthorized"
    anthropic_style = get(f"{secured.url}/v1/models", {"anthropic-version": "2023-06-01"})
    assert anthropic_style.status_code == 401
    assert anthropic_style.json()["error"]["type"] == "authentication_error"
    ids = {m.id for m in openai_client(secured, TOKENS["EDGE_TOKEN_A"]).models.list()}
    assert "gpt-4o" in ids


def test_ops_endpoints_stay_open_unless_protected(gateway_factory):
    secured = gateway_factory(AUTH, environ=TOKENS)
    for path in ("/healthz", "/readyz", *OPS):
        assert get(f"{secured.url}{path}").status_code == 200, path
    protected = gateway_factory(deep_merge(AUTH, PROTECTED_OPS), environ=TOKENS)
    for path in ("/healthz", "/readyz"):  # the kubelet's probes carry no token
        assert get(f"{protected.url}{path}").status_code == 200, path
    bearer = {"authorization": f"Bearer {TOKENS['EDGE_TOKEN_B']}"}
    for path in OPS:
        assert get(f"{protected.url}{path}").status_code == 401, path
        assert get(f"{protected.url}{path}", {"x-api-key": "nope"}).status_code == 401, path
        assert get(f"{protected.url}{path}", bearer).status_code == 200, path
    assert get(f"{protected.url}/no-such-path").status_code == 401  # deny by default


def test_auth_is_off_without_tokens(gateway):
    assert get(f"{gateway.url}/v1/models").status_code == 200


def test_every_token_is_compared_in_constant_time(secured, monkeypatch):
    """A spy on the stdlib's compare_digest: called once per configured token per credential,
    whichever token matches (no early exit that would tell which one did)."""
    calls: list[tuple[bytes, bytes]] = []
    lock = threading.Lock()
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        with lock:
            calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    url = f"{secured.url}/v1/models"
    for token in ("tok-wrong", *TOKENS.values()):
        calls.clear()
        expected = 200 if token in TOKENS.values() else 401
        assert get(url, {"authorization": f"Bearer {token}"}).status_code == expected
        assert len(calls) == len(TOKENS), token
        assert all(len(a) == len(b) == 32 for a, b in calls), "digests, not the raw tokens"
    calls.clear()
    both = {"authorization": "Bearer tok-wrong", "x-api-key": TOKENS["EDGE_TOKEN_A"]}
    assert get(url, both).status_code == 200
    assert len(calls) == 2 * len(TOKENS)


def test_reloaded_tokens_apply_to_the_next_request(secured):
    url = f"{secured.url}/v1/models"
    old, new = TOKENS["EDGE_TOKEN_A"], "tok-rotated-44d0"
    snapshot = load_snapshot(
        secured.config_path, environ={**ENVIRON, **TOKENS, "EDGE_TOKEN_A": new}
    )

    async def swap() -> None:
        secured.state.swap(snapshot)

    secured.server.call(swap)
    assert get(url, {"authorization": f"Bearer {old}"}).status_code == 401
    assert get(url, {"authorization": f"Bearer {new}"}).status_code == 200
    assert get(url, {"authorization": f"Bearer {TOKENS['EDGE_TOKEN_B']}"}).status_code == 200


def test_unauthorized_requests_are_counted_and_logged(secured):
    post(f"{secured.url}/v1/messages", b"{}")
    metrics = get(f"{secured.url}/metrics").text
    assert (
        'llm_edge_requests_total{dialect="anthropic",error_type="unauthorized",model="",'
        'provider="",status="401",stream="false"} 1.0'
    ) in metrics


@pytest.mark.parametrize("with_auth", [False, True], ids=["no-auth", "auth"])
def test_cli_warns_loudly_on_a_non_loopback_bind_without_auth(sim, tmp_path, with_auth):
    """192.0.2.1 (TEST-NET-1) is non-loopback and never local: the bind fails right after the
    warning, so nothing listens beyond loopback."""
    config = gateway_config(sim.url, tmp_path, AUTH if with_auth else None)
    command = [sys.executable, "-m", "proxy", "serve", "--config", str(config)]
    env = {"PATH": "", **ENVIRON, **TOKENS}
    result = subprocess.run(
        [*command, "--host", "192.0.2.1", "--port", "9"],
        capture_output=True, text=True, timeout=30, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode != 0, "the bind must fail on an address this host does not have"
    warned = "WARNING: llm-edge-agent is listening on a non-loopback address" in result.stderr
    assert warned is not with_auth, result.stderr[-2000:]
