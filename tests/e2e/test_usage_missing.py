"""An upstream answer without usage is reported as unknown, never as free (issue 11, part 3).

Through the real gateway with the official SDKs, for every client/upstream pairing, stream or
not: the fake vendor answers normally but reports no usage (a ``no_usage`` fault). The token
and cost headers are omitted, ``usage.cost`` is null, the access log says ``cost_usd: null``
and ``usage_missing: true``, and ``llm_edge_usage_missing_total`` counts the answer.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from proxy.logs import ACCESS_LOGGER
from proxy.sim.faults import Fault
from tests.e2e.test_access_log import access_lines
from tests.http import get
from tests.prom import samples

OPENAI_MODEL, CLAUDE_MODEL, GEMINI_MODEL = "gpt-4o", "claude-3.5-sonnet", "gemini-2.5-flash"
TARGETS = {
    OPENAI_MODEL: ("gpt-4o", "openai"),
    CLAUDE_MODEL: ("claude-3-5-sonnet-20241022", "anthropic"),
    GEMINI_MODEL: ("gemini-2.5-flash", "gemini"),
}
COST_HEADERS = ("x-llm-input-tokens", "x-llm-output-tokens", "x-llm-cost-usd")
MODELS = [OPENAI_MODEL, CLAUDE_MODEL, GEMINI_MODEL]
MESSAGES = [{"role": "user", "content": "say: nobody counted this"}]


def no_usage(model: str, stream: bool = False) -> Fault:
    """The fault for ``model``'s upstream path (Gemini's names the model)."""
    if model != GEMINI_MODEL:
        return Fault(kind="no_usage")
    verb = "streamGenerateContent" if stream else "generateContent"
    return Fault(kind="no_usage", path=f"/v1beta/models/{model}:{verb}")


def _missing_counts(url: str) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["model"], dict(labels)["provider"]): value
        for (name, labels), value in samples(get(f"{url}/metrics").text).items()
        if name == "llm_edge_usage_missing_total"
    }


def _check_logged_and_counted(gateway: Any, caplog: Any, model: str) -> None:
    line = access_lines(caplog, 1)[0]
    assert line["status"] == 200 and line["error_type"] is None
    assert line["cost_usd"] is None and line["usage_missing"] is True
    assert line["input_tokens"] is None and line["output_tokens"] is None
    counts = _missing_counts(gateway.url)
    assert counts[TARGETS[model]] == 1
    cost = [
        value
        for (name, labels), value in samples(get(f"{gateway.url}/metrics").text).items()
        if name == "llm_edge_cost_usd_total" and dict(labels).get("model") == TARGETS[model][0]
    ]
    assert cost in ([], [0.0])


@pytest.mark.parametrize("model", MODELS)
def test_openai_client_without_usage_gets_no_cost(gateway, sim, caplog, model):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    sim.sim.faults.push(no_usage(model))
    raw = gateway.openai().chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    reply = raw.parse()
    assert reply.choices[0].message.content == "nobody counted this"
    for header in COST_HEADERS:
        assert header not in raw.headers
    assert raw.headers["x-llm-attempts"] == "1"
    assert reply.usage.model_extra["cost"] is None
    assert reply.usage.prompt_tokens is None and reply.usage.completion_tokens is None
    _check_logged_and_counted(gateway, caplog, model)


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_client_without_usage_gets_no_cost(gateway, sim, caplog, model):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    sim.sim.faults.push(no_usage(model))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model=model, max_tokens=100, messages=MESSAGES
    )
    message = raw.parse()
    assert message.content[0].text == "nobody counted this"
    for header in COST_HEADERS:
        assert header not in raw.headers
    assert message.usage.model_extra["cost"] is None
    assert message.usage.input_tokens is None and message.usage.output_tokens is None
    _check_logged_and_counted(gateway, caplog, model)


@pytest.mark.parametrize("model", MODELS)
def test_openai_stream_without_usage_ends_with_an_unknown_usage_chunk(gateway, sim, caplog, model):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    sim.sim.faults.push(no_usage(model, stream=True))
    chunks = list(
        gateway.openai().chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "nobody counted this"
    last = chunks[-1]
    assert last.choices == [] and last.id == chunks[0].id
    assert last.usage.model_extra["cost"] is None
    assert last.usage.prompt_tokens is None and last.usage.completion_tokens is None
    assert [c for c in chunks if c.usage is not None] == [last]
    _check_logged_and_counted(gateway, caplog, model)


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_stream_without_usage_has_a_null_cost(gateway, sim, caplog, model):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    sim.sim.faults.push(no_usage(model, stream=True))
    with gateway.anthropic().messages.stream(
        model=model, max_tokens=100, messages=MESSAGES
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert final.content[0].text == "nobody counted this"
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.model_extra["cost"] is None
    assert delta.usage.output_tokens is None
    _check_logged_and_counted(gateway, caplog, model)


def test_a_reported_usage_is_not_counted_missing(gateway, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model=OPENAI_MODEL, messages=MESSAGES
    )
    assert raw.parse().usage.model_extra["cost"] > 0
    assert float(raw.headers["x-llm-cost-usd"]) > 0
    line = access_lines(caplog, 1)[0]
    assert "usage_missing" not in line and line["cost_usd"] > 0
    assert _missing_counts(gateway.url).get(TARGETS[OPENAI_MODEL], 0) == 0
