"""The access log: one JSON line per request with the issue's fields; never a prompt or a key
unless ``log_content`` asks for the content (and never a key even then). Also the request id,
echoed, passed upstream and logged."""

from __future__ import annotations

import json
import logging
import signal
import uuid
from typing import Any

import openai
import orjson
import pytest

from proxy.logs import ACCESS_LOGGER, JsonFormatter
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, gateway_config, wait_until
from tests.http import post
from tests.sdk import anthropic_client, openai_client

FIELDS = {
    "time", "request_id", "dialect", "model_requested", "model", "upstream_model", "provider",
    "status", "error_type", "attempts", "input_tokens", "output_tokens", "cached_tokens",
    "cost_usd", "latency_ms", "upstream_ms", "first_token_ms", "overhead_ms", "bytes_in",
    "bytes_out", "stream", "client_disconnected",
}  # fmt: skip
TOKEN_ENV = {"EDGE_TOKEN": "tok-CANARY-inbound-5b1d"}
CLIENT_LOGGERS = ("openai", "anthropic", "httpx", "httpcore")
AUTH = {"server": {"auth": {"tokens_env": ["EDGE_TOKEN"]}}}


def canary_prompt() -> str:
    return f"CANARY-PROMPT-{uuid.uuid4().hex}"


def access_lines(caplog: pytest.LogCaptureFixture, n: int) -> list[dict[str, Any]]:
    """The first ``n`` access lines as the JSON formatter writes them (waits: streams log
    after their last byte)."""
    formatter = JsonFormatter()

    def lines() -> list[dict[str, Any]]:
        records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
        return [json.loads(formatter.format(r)) for r in records]

    wait_until(lambda: len(lines()) >= n)
    return lines()


def every_line(caplog: pytest.LogCaptureFixture) -> str:
    """Every record the gateway's side logged (any logger but the test's own SDK clients, which
    log their requests at DEBUG), formatted with its extras."""
    formatter = JsonFormatter()
    ours = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    return "\n".join(formatter.format(record) + record.getMessage() for record in ours)


def test_one_json_line_per_request_with_every_field(gateway, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt4",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "req-log-1"},
    )
    stream = gateway.anthropic().messages.create(
        model="claude-3-5-haiku-20241022",
        max_tokens=32,
        stream=True,
        messages=[{"role": "user", "content": "say: one two three"}],
    )
    assert [e.type for e in stream][-1] == "message_stop"
    with pytest.raises(openai.NotFoundError):
        gateway.openai().chat.completions.create(
            model="gpt-99", messages=[{"role": "user", "content": "hi"}]
        )
    plain, streamed, missing = access_lines(caplog, 3)
    for line in (plain, streamed, missing):
        assert set(line) >= FIELDS, FIELDS - set(line)
        assert line["logger"] == ACCESS_LOGGER and line["level"] == "info"
    headers = raw.headers
    assert plain["request_id"] == "req-log-1"
    assert (plain["dialect"], plain["model_requested"], plain["model"]) == (
        "openai",
        "gpt4",
        "gpt-4",
    )
    assert (plain["provider"], plain["upstream_model"]) == ("openai", headers["x-llm-model"])
    assert (plain["status"], plain["error_type"], plain["attempts"]) == (200, None, 1)
    assert plain["input_tokens"] == int(headers["x-llm-input-tokens"]) > 0
    assert plain["output_tokens"] == int(headers["x-llm-output-tokens"]) > 0
    assert str(plain["cost_usd"]) == headers["x-llm-cost-usd"]
    assert plain["latency_ms"] >= plain["upstream_ms"] > 0
    assert plain["first_token_ms"] is None and plain["stream"] is False
    assert plain["bytes_out"] == len(raw.content) and plain["bytes_in"] > 0
    assert streamed["dialect"] == "anthropic" and streamed["stream"] is True
    assert 0 < streamed["first_token_ms"] <= streamed["latency_ms"]
    assert streamed["cost_usd"] > 0 and streamed["client_disconnected"] is False
    assert (missing["status"], missing["error_type"]) == (404, "model_not_found")
    assert (missing["model_requested"], missing["model"], missing["attempts"]) == (
        "gpt-99",
        None,
        0,
    )


def test_canary_prompt_and_keys_never_logged_at_default_settings(gateway_factory, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_factory(AUTH, environ=TOKEN_ENV)
    prompt, token = canary_prompt(), TOKEN_ENV["EDGE_TOKEN"]
    messages = [{"role": "user", "content": prompt}]
    client = openai_client(f"{gateway.url}/v1", token)
    client.chat.completions.create(model="gpt-4o", messages=messages)
    list(client.chat.completions.create(model="claude-3.5-sonnet", messages=messages, stream=True))
    anthropic_client(gateway.url, api_key=token).messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=16, messages=messages
    )
    bad = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "robot", "content": prompt}]})
    url = f"{gateway.url}/v1/chat/completions"
    assert post(url, bad, {"authorization": f"Bearer {token}"}).status_code == 400
    assert post(url, bad, {"authorization": "Bearer sk-CANARY-wrong"}).status_code == 401
    assert len(access_lines(caplog, 5)) == 5
    text = every_line(caplog)
    for secret in (prompt, token, "sk-CANARY-wrong", OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in text


def test_log_content_logs_prompt_and_completion_but_never_a_key(gateway_factory, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    gateway = gateway_factory({"server": {"logging": {"log_content": True}}})
    prompt = canary_prompt()
    reply = gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    (line,) = access_lines(caplog, 1)
    assert line["request"]["messages"] == [{"role": "user", "content": prompt}]
    assert line["response"]["choices"][0]["message"]["content"] == reply.choices[0].message.content
    assert OPENAI_KEY not in every_line(caplog)


def test_access_log_can_be_turned_off(gateway_factory, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    gateway = gateway_factory({"server": {"logging": {"access_log": False}}})
    gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    wait_until(lambda: gateway.state.in_flight == 0)
    assert not [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_text_format_is_one_readable_line(gateway_factory, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    gateway = gateway_factory({"server": {"logging": {"format": "text"}}})
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "req-text-1"},
    )
    wait_until(lambda: [r for r in caplog.records if r.name == ACCESS_LOGGER])
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    line = record.getMessage()
    assert line.startswith("req-text-1 openai gpt-4o->openai/gpt-4o 200 - attempts=1 ")
    assert f"cost_usd={raw.headers['x-llm-cost-usd']} " in line
    assert "stream=false" in line


def test_request_id_is_echoed_passed_upstream_and_logged(gateway, sim, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client = gateway.anthropic()
    messages = [{"role": "user", "content": "hi"}]
    given = client.messages.with_raw_response.create(
        model="gpt-4o",
        max_tokens=16,
        messages=messages,
        extra_headers={"x-request-id": "req-from-anthropic-client"},
    )
    assert given.headers["x-request-id"] == "req-from-anthropic-client"
    assert sim.completions()[-1].headers["x-request-id"] == "req-from-anthropic-client"
    fresh = client.messages.with_raw_response.create(
        model="claude-3-5-haiku-20241022", max_tokens=16, messages=messages
    )
    new_id = fresh.headers["x-request-id"]
    assert new_id.startswith("req_") and sim.completions()[-1].headers["x-request-id"] == new_id
    logged = [line["request_id"] for line in access_lines(caplog, 2)]
    assert logged == ["req-from-anthropic-client", new_id]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_real_process_logs(spawn_gateway, sim, tmp_path, log_format):
    """The CLI's own logging: JSON lines (every line parses) or text at level WARNING, where
    the access log still appears (it has its own switch); canaries absent either way."""
    settings = {"format": log_format, "level": "INFO" if log_format == "json" else "WARNING"}
    config = gateway_config(sim.url, tmp_path, {"server": {"logging": settings}})
    process = spawn_gateway(config)
    prompt = canary_prompt()
    for stream in (False, True):
        reply = post(
            f"{process.url}/v1/chat/completions",
            orjson.dumps(
                {
                    "model": "gpt-4o",
                    "stream": stream,
                    "messages": [{"role": "user", "content": prompt}],
                }
            ),
            {"x-request-id": f"req-process-{stream}"},
        )
        assert reply.status_code == 200
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    log = process.log()
    for secret in (prompt, OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in log
    lines = [line for line in log.splitlines() if line.strip()]
    if log_format == "json":
        parsed = [json.loads(line) for line in lines]
        access = [p for p in parsed if p["logger"] == ACCESS_LOGGER]
        assert [a["request_id"] for a in access] == ["req-process-False", "req-process-True"]
        assert all(set(a) >= FIELDS for a in access)
        assert any(p["message"].startswith("draining") for p in parsed)  # shutdown's lines too
    else:
        access = [line for line in lines if ACCESS_LOGGER in line]
        assert len(access) == 2 and "req-process-True openai gpt-4o" in access[1]
        assert not [line for line in lines if " INFO llm_edge_agent " in line]
