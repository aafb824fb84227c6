"""Azure OpenAI's differences, handled: its errors on the taxonomy (401, 429 + retry-after,
5xx, a prompt its content filter refused, an unknown deployment, a wrong api-version), a
filtered completion, health checks, a fallback to OpenAI, and an Entra ID token rotated in a
mounted file applying at the reload the file change triggers."""

from __future__ import annotations

import os
from pathlib import Path

import anthropic
import openai
import pytest

from proxy.sim.azure import FILTER_COMPLETION, FILTER_PROMPT
from proxy.sim.faults import Fault
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, wait_until
from tests.e2e.live_config import start_live, stop_live
from tests.e2e.vendor_configs import (
    AZURE,
    AZURE_KEY,
    AZURE_TOKEN,
    AZURE_V1,
    ENVIRON,
    LOCAL,
    MISSING,
    WRONG_VERSION,
    configure_sim,
    last_post,
    overrides,
)
from tests.http import get

SAY = [{"role": "user", "content": "say: hello"}]


@pytest.fixture
def gw(gateway_factory, sim):
    configure_sim(sim)
    return gateway_factory(overrides(sim.url), environ=ENVIRON)


@pytest.mark.parametrize("model", [AZURE, AZURE_V1])
def test_a_prompt_the_content_filter_refused_is_invalid_request(gw, sim, model):
    messages = [{"role": "user", "content": f"say: {FILTER_PROMPT}"}]
    with pytest.raises(openai.BadRequestError) as caught:
        gw.openai().chat.completions.create(model=model, messages=messages)
    error = caught.value
    assert error.body["type"] == "invalid_request" and error.body["code"] == "content_filter"
    assert "content filter refused the prompt" in error.body["message"]
    assert error.response.headers["x-llm-attempts"] == "1"  # a verdict: never retried
    with pytest.raises(anthropic.BadRequestError) as refused:
        gw.anthropic().messages.create(model=model, max_tokens=50, messages=messages)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "content filter" in refused.value.body["error"]["message"]


def test_a_filtered_completion_says_content_filter_and_refusal(gw):
    messages = [{"role": "user", "content": f"say: {FILTER_COMPLETION} ok"}]
    reply = gw.openai().chat.completions.create(model=AZURE, messages=messages)
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].model_extra["content_filter_results"]["violence"]["filtered"]
    chunks = list(gw.openai().chat.completions.create(model=AZURE, messages=messages, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    client = gw.anthropic()
    message = client.messages.create(model=AZURE, max_tokens=50, messages=messages)
    assert message.stop_reason == "refusal"
    with client.messages.stream(model=AZURE, max_tokens=50, messages=messages) as stream:
        assert stream.get_final_message().stop_reason == "refusal"


def test_an_unknown_deployment_is_model_not_found(gw):
    with pytest.raises(openai.NotFoundError) as caught:
        gw.openai().chat.completions.create(model=MISSING, messages=SAY)
    assert caught.value.body["type"] == "model_not_found"
    assert caught.value.response.headers["x-llm-model"] == "no-such-deployment"
    with pytest.raises(anthropic.NotFoundError):
        gw.anthropic().messages.create(model=MISSING, max_tokens=50, messages=SAY)


def test_a_wrong_api_version_is_a_configuration_error_not_an_unknown_model(gw):
    with pytest.raises(openai.APIStatusError) as caught:
        gw.openai().chat.completions.create(model=WRONG_VERSION, messages=SAY)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "provider_error"
    assert "api_version" in caught.value.body["message"]


def test_a_wrong_key_is_invalid_api_key(gateway_factory, sim):
    configure_sim(sim)
    gw = gateway_factory(overrides(sim.url), environ={**ENVIRON, "AZURE_OPENAI_API_KEY": "bad"})
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.openai().chat.completions.create(model=AZURE, messages=SAY)
    assert caught.value.body["type"] == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError):
        gw.anthropic().messages.create(model=AZURE, max_tokens=50, messages=SAY)


def test_a_429_is_retried_after_the_wait_azure_asks(gw, sim):
    sim.sim.faults.push(Fault(kind="status", status=429, headers={"retry-after": "0"}))
    raw = gw.openai().chat.completions.with_raw_response.create(model=AZURE, messages=SAY)
    assert raw.headers["x-llm-attempts"] == "2"
    assert raw.parse().choices[0].message.content == "hello"


def test_a_429_surviving_retries_is_passed_on_with_retry_after(gateway_factory, sim):
    configure_sim(sim)
    extra = {"models": {AZURE: {"retry": {"max_retries": 0}}}}
    gw = gateway_factory(overrides(sim.url, extra), environ=ENVIRON)
    sim.sim.faults.push(Fault(kind="status", status=429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        gw.openai().chat.completions.create(model=AZURE, messages=SAY)
    assert caught.value.body["type"] == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["code"] == "429"  # Azure's code, as Azure gives it


def test_5xx_is_retried_then_reported_as_provider_error(gw, sim):
    sim.sim.faults.push(Fault(kind="status", status=500))
    raw = gw.openai().chat.completions.with_raw_response.create(model=AZURE_V1, messages=SAY)
    assert raw.headers["x-llm-attempts"] == "2"
    sim.sim.faults.push(*[Fault(kind="status", status=503)] * 3)
    with pytest.raises(anthropic.APIStatusError) as caught:
        gw.anthropic().messages.create(model=AZURE_V1, max_tokens=50, messages=SAY)
    assert caught.value.status_code in (502, 529)
    assert caught.value.response.headers["x-llm-attempts"] == "3"


def test_azure_primary_falls_back_to_openai(gateway_factory, sim):
    configure_sim(sim)
    extra = {"models": {AZURE: {"fallbacks": ["gpt-4o"], "retry": {"max_retries": 0}}}}
    gw = gateway_factory(overrides(sim.url, extra), environ=ENVIRON)
    sim.sim.faults.push(Fault(kind="status", status=500))
    raw = gw.openai().chat.completions.with_raw_response.create(model=AZURE, messages=SAY)
    assert raw.headers["x-llm-provider"] == "openai" and raw.headers["x-llm-model"] == "gpt-4o"
    assert raw.parse().choices[0].message.content == "hello"
    assert last_post(sim).path == "/v1/chat/completions"
    assert last_post(sim).headers["authorization"] == f"Bearer {OPENAI_KEY}"
    sim.sim.faults.push(Fault(kind="status", status=503))  # streamed, Anthropic client
    with gw.anthropic().messages.stream(model=AZURE, max_tokens=50, messages=SAY) as stream:
        assert stream.get_final_message().content[0].text == "hello"
    assert last_post(sim).path == "/v1/chat/completions"


def test_health_checks_use_each_types_models_list(gw, sim):
    reply = get(f"{gw.url}/health/providers")
    body = reply.json()
    for name in ("azure", "azure_v1", "local", "keyed"):
        assert body[name]["healthy"] is True, body[name]
    paths = {(r.path, r.headers.get("api-key")) for r in sim.sim.received if r.method == "GET"}
    assert ("/openai/models", AZURE_KEY) in paths and ("/openai/v1/models", None) in paths
    assert ("/compat/v1/models", None) in paths


def test_a_rotated_token_file_applies_at_the_reload_it_triggers(
    gateway_factory, sim, tmp_path, monkeypatch
):
    for name, value in {**ENVIRON, "OPENAI_API_KEY": OPENAI_KEY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    secrets = tmp_path / "secrets"  # another directory than the config's, as a mounted volume
    secrets.mkdir()
    token_file = secrets / "azure-token"
    token_file.write_text(AZURE_TOKEN + "\n")
    configure_sim(sim)
    provider = {"type": "azure_openai", "base_url": sim.url, "azure_ad_token_file": str(token_file)}
    model = {
        "provider": "azure_file",
        "upstream_model": "gpt-4o-prod",
        "price": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
    }
    extra = {"providers": {"azure_file": provider}, "models": {"azure-file": model}}
    gw = gateway_factory(overrides(sim.url, extra), environ=ENVIRON)
    task = start_live(gw)
    try:
        gw.openai().chat.completions.create(model="azure-file", messages=SAY)
        assert last_post(sim).headers["authorization"] == f"Bearer {AZURE_TOKEN}"
        rotated = "eyJ-rotated-entra-token"
        sim.sim.configure(azure_token=rotated)
        _replace(token_file, rotated + "\n")
        wait_until(lambda: gw.state.snapshot.providers["azure_file"].azure_ad_token == rotated, 10)
        reply = gw.openai().chat.completions.create(model="azure-file", messages=SAY)
        assert reply.choices[0].message.content == "hello"
        assert last_post(sim).headers["authorization"] == f"Bearer {rotated}"
    finally:
        stop_live(gw, task)


def _replace(path: Path, text: str) -> None:
    """How a secret refresher writes: a new file renamed over the old one."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def test_the_other_types_models_are_untouched_by_azure_faults(gw, sim):
    sim.sim.faults.push(Fault(kind="status", status=500, path="/openai/v1/chat/completions"))
    assert gw.openai().chat.completions.create(model=LOCAL, messages=SAY).choices
    assert len(sim.sim.faults) == 1


@pytest.mark.parametrize("model", [AZURE, LOCAL])
def test_streams_of_both_types_are_cached_and_replayed(gateway_factory, sim, model):
    configure_sim(sim)
    gw = gateway_factory(overrides(sim.url, {"cache": {"enabled": True}}), environ=ENVIRON)

    def stream() -> tuple[str, str]:
        with gw.openai().chat.completions.with_streaming_response.create(
            model=model, messages=SAY, stream=True, stream_options={"include_usage": True}
        ) as raw:
            chunks = list(raw.parse())
            status = raw.headers["x-llm-cache"]
        return status, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert stream() == ("miss", "hello")
    assert stream() == ("hit", "hello")
    assert len([r for r in sim.sim.received if r.method == "POST"]) == 1
