"""Micro-benchmarks of the pure translators and the cost computation (issue 6).

Budgets: a request or response translation <= 30 us, one stream event <= 5 us. In the normal
suite (pyproject's ``--benchmark-disable``) each runs once as a plain test; to measure:

    .venv/bin/pytest tests/bench/test_micro.py --benchmark-enable

and with the benchmark enabled each test also checks its budget against the median.
A translator that is not importable (yet) skips its test with the reason.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import bodies

KIT = Path(__file__).resolve().parents[2] / "proxy" / "sim" / "vendor" / "samples"
REQUEST_BUDGET_US = 30.0
EVENT_BUDGET_US = 5.0


def _load(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{module}.{name} is not importable: {exc}")


def _within(benchmark: Any, budget_us: float, per: int = 1) -> None:
    """With the benchmark enabled, the median time (divided by ``per``) meets ``budget_us``."""
    if benchmark.disabled or benchmark.stats is None:
        return
    median_us = benchmark.stats.stats.median * 1e6 / per
    benchmark.extra_info["median_us_each"] = round(median_us, 3)
    assert median_us <= budget_us, f"{median_us:.2f} us > budget {budget_us} us"


def _kit(name: str) -> dict[str, Any] | None:
    path = KIT / name
    return json.loads(path.read_text()) if path.exists() else None


def _requests() -> dict[str, dict[str, Any]]:
    out = {"small": orjson.loads(bodies.requests()["small_claude.json"])}
    for name in ("openai/chat.request.json", "openai/chat.request.tool_results.json"):
        sample = _kit(name)
        if sample is not None:
            out[Path(name).stem] = sample
    return out


@pytest.mark.parametrize("case", sorted(_requests()))
def test_request_openai_to_anthropic(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.anthropic.request", "openai_to_anthropic")
    body = _requests()[case]
    kwargs = {
        "upstream_model": "claude-sonnet-4-5-20250929",
        "default_max_tokens": 4096,
        "drop_unsupported": True,
    }
    out, _dropped = benchmark(translate, body, **kwargs)
    assert out["model"] == "claude-sonnet-4-5-20250929" and out["messages"]
    _within(benchmark, REQUEST_BUDGET_US)


def _responses() -> dict[str, dict[str, Any]]:
    out = {"small": orjson.loads(bodies.anthropic_response())}
    sample = _kit("anthropic/messages.response.tool_use.json")
    if sample is not None:
        out["tool_use"] = sample
    return out


@pytest.mark.parametrize("case", sorted(_responses()))
def test_response_anthropic_to_openai(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.anthropic.response", "anthropic_to_openai_response")
    out = benchmark(translate, _responses()[case], created=1764061260)
    assert out["object"] == "chat.completion" and out["usage"]
    _within(benchmark, REQUEST_BUDGET_US)


def _events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data bytes) of an Anthropic SSE body."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        name, data = None, b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        out.append((name, data))
    return out


def _feed_all(cls: Callable[..., Any], events: list[tuple[str | None, Any]]) -> int:
    translator = cls(created=1764061260)
    produced = 0
    for name, payload in events:
        produced += len(translator.feed(name, payload))
    produced += len(translator.finish())
    return produced


def test_stream_event_translation(benchmark: Any) -> None:
    """The translator alone, per event, over a whole 50-delta stream (payloads pre-parsed)."""
    cls = _load("proxy.providers.anthropic.stream", "AnthropicToOpenAIStream")
    events = [(n, orjson.loads(d)) for n, d in _events(bodies.anthropic_stream())]
    produced = benchmark(_feed_all, cls, events)
    assert produced >= bodies.STREAM_CHUNKS
    _within(benchmark, EVENT_BUDGET_US, per=len(events))


def test_stream_event_with_json(benchmark: Any) -> None:
    """What the gateway does per event: parse the data line, translate, serialise the output."""
    cls = _load("proxy.providers.anthropic.stream", "AnthropicToOpenAIStream")
    events = _events(bodies.anthropic_stream())

    def run() -> int:
        translator = cls(created=1764061260)
        size = 0
        for name, data in events:
            for _out_name, payload in translator.feed(name, orjson.loads(data)):
                size += len(b"data: " + orjson.dumps(payload) + b"\n\n")
        return size

    assert benchmark(run) > 0
    _within(benchmark, EVENT_BUDGET_US, per=len(events))


def test_cost(benchmark: Any) -> None:
    price_cls = _load("proxy.pricing", "Price")
    usage_cls = _load("proxy.pricing", "Usage")
    cost = _load("proxy.pricing", "cost")
    price = price_cls(Decimal("0.003"), Decimal("0.015"), Decimal("0.0003"), Decimal("0.00375"))
    usage_json = orjson.loads(bodies.anthropic_response())["usage"]

    def run() -> Decimal:
        return cost(price, usage_cls.from_anthropic(usage_json))

    assert benchmark(run) > 0
    _within(benchmark, REQUEST_BUDGET_US)


CHECK_BUDGET_US = 20.0


def _check_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    out = {name: ("openai", body) for name, body in _requests().items()}
    for name in ("anthropic/messages.request.json", "anthropic/messages.request.tool_results.json"):
        sample = _kit(name)
        if sample is not None:
            out[Path(name).stem] = ("anthropic", sample)
    return out


@pytest.mark.parametrize("case", sorted(_check_cases()))
def test_capability_checks(benchmark: Any, case: str) -> None:
    """Issue 15: what a request needs plus the check against one model, per request."""
    needs_of = _load("proxy.capabilities.needs", "needs_of")
    refusal = _load("proxy.capabilities.checks", "refusal")
    from proxy.capabilities.model import Capabilities
    from proxy.config.snapshot import ModelConfig
    from proxy.pricing import Price

    caps = Capabilities(tools=True, vision=True, json_schema=True, streaming=True,
                        system_prompt=True, reasoning=False, context_window=200_000,
                        max_output_tokens=8192)  # fmt: skip
    model = ModelConfig("m", "p", "m", Price(Decimal(1), Decimal(1)), capabilities=caps)
    dialect, body = _check_cases()[case]

    def run() -> Any:
        return refusal(model, needs_of(dialect, body))

    assert benchmark(run) is None
    _within(benchmark, CHECK_BUDGET_US)


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (the memory store's) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the memory backend suspended")


LIMITS_CASES = {
    "one-budget": {"budgets": [{"name": "daily", "usd": 1e9}]},
    "two-budgets-rpm-tpm": {
        "budgets": [{"name": "daily", "usd": 1e9}, {"name": "gpt-4o", "usd": 1e9,
                    "period": "hour", "models": ["gpt-4o"], "mode": "soft"}],
        "rate_limits": [{"name": "rpm", "requests_per_minute": 10**9,
                         "tokens_per_minute": 10**12}],
    },
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(LIMITS_CASES))
def test_limits_check_memory_backend(benchmark: Any, tmp_path: Path, case: str) -> None:
    """Issue 17: a request's whole limits work with the memory backend, as the handler does it
    (proxy/server/completions.py): admission, settle, the remaining headers and the `finally`
    settle (a no-op once settled); budget 30 us."""
    import yaml

    from proxy.config.build import load_snapshot
    from proxy.engine.attempts import Call
    from proxy.engine.limits import Limits, admit_call
    from proxy.pricing import Usage, cost

    config = {
        "providers": {"openai": {"type": "openai", "base_url": "http://x/v1", "api_key": "k"}},
        "models": {"gpt-4o": {"provider": "openai", "price": {
            "input_per_1k": 0.0025, "output_per_1k": 0.01}}},
        "limits": LIMITS_CASES[case],
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    snapshot = load_snapshot(path, environ={})
    raw = bodies.requests()["small_claude.json"]
    body = {**orjson.loads(raw), "model": "gpt-4o"}
    price = snapshot.models["gpt-4o"].price
    usage = Usage(prompt_tokens=120, completion_tokens=40)
    amount = cost(price, usage)  # the gateway prices every answer anyway: not limits work
    limits, headers = Limits(), {"authorization": "Bearer x"}

    def run() -> dict[str, str]:
        call = Call("openai", body, raw, False, snapshot, "id", 0.0)
        _drive(admit_call(limits, call, headers))
        _drive(call.ticket.settle("gpt-4o", usage, amount))
        remaining = call.ticket.headers("gpt-4o")
        call.ticket.settle_later(None, None, None)
        return remaining

    assert "x-llm-budget-remaining-usd" in benchmark(run)
    _within(benchmark, REQUEST_BUDGET_US)


# --- issue 14: Cohere v2 chat ------------------------------------------------------------


def _cohere_requests() -> dict[str, dict[str, Any]]:
    """The OpenAI-shaped requests a Cohere model can take (the kit's first sample sends a PDF
    and a hyphenated tool name, which Cohere refuses: a 400, not a translation)."""
    out = dict(_requests())
    sample = _kit("cohere/chat.v2.request.json")
    if sample is not None:  # the kit's Cohere request, as an OpenAI client would send it
        out["cohere_sample"] = {
            "model": "m",
            "messages": sample["messages"],
            "tools": sample["tools"],
            "max_tokens": 1024,
            "temperature": 0.3,
            "top_p": 0.75,
            "stop": "\n\nUser:",
        }
    out.pop("chat.request", None)
    return out


@pytest.mark.parametrize("case", sorted(_cohere_requests()))
def test_request_openai_to_cohere(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.cohere.request", "to_cohere")
    body = _cohere_requests()[case]
    out, _dropped = benchmark(
        translate, body, upstream_model="command-a-03-2025", drop_unsupported=True
    )
    assert out["model"] == "command-a-03-2025" and out["messages"]
    _within(benchmark, REQUEST_BUDGET_US)


def _cohere_responses() -> dict[str, dict[str, Any]]:
    out = {"small": orjson.loads(bodies.cohere_response())}
    sample = _kit("cohere/chat.v2.response.json")
    if sample is not None:
        out["tool_call"] = sample
    return out


@pytest.mark.parametrize("case", sorted(_cohere_responses()))
def test_response_cohere_to_openai(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.cohere.response", "to_unified")
    out = benchmark(translate, _cohere_responses()[case], created=1764061260)
    assert out["object"] == "chat.completion" and out["usage"]["prompt_tokens"] > 0
    _within(benchmark, REQUEST_BUDGET_US)


def _cohere_events() -> list[tuple[str | None, bytes]]:
    return [(n, d) for n, d in _events(bodies.cohere_stream()) if d != b"[DONE]"]


def test_cohere_stream_event_translation(benchmark: Any) -> None:
    """The Cohere translator alone, per event, over a whole 50-delta stream (pre-parsed)."""
    cls = _load("proxy.providers.cohere.stream", "CohereToUnifiedStream")
    events = [(n, orjson.loads(d)) for n, d in _cohere_events()]
    produced = benchmark(_feed_all, cls, events)
    assert produced >= bodies.STREAM_CHUNKS
    _within(benchmark, EVENT_BUDGET_US, per=len(events))


def test_cohere_stream_event_with_json(benchmark: Any) -> None:
    """Per event: parse the data line, translate to a unified chunk, serialise it."""
    cls = _load("proxy.providers.cohere.stream", "CohereToUnifiedStream")
    events = _cohere_events()

    def run() -> int:
        translator = cls(created=1764061260)
        size = 0
        for name, data in events:
            for _out_name, payload in translator.feed(name, orjson.loads(data)):
                size += len(b"data: " + orjson.dumps(payload) + b"\n\n")
        return size

    assert benchmark(run) > 0
    _within(benchmark, EVENT_BUDGET_US, per=len(events))


# --- Gemini beside Anthropic (issue 13): the same inputs through each vendor's translators ---


def _inline_images(body: dict[str, Any]) -> dict[str, Any]:
    """The kit's request with its https image as a data URL (Gemini takes no URLs)."""
    out = json.loads(json.dumps(body))
    for message in out["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url" and not part["image_url"]["url"].startswith("data:"):
                part["image_url"]["url"] = "data:image/png;base64,iVBORw0KGgo="
    return out


@pytest.mark.parametrize("case", sorted(_requests()))
def test_request_unified_to_gemini(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.gemini.request", "unified_to_gemini")
    body = _inline_images(_requests()[case])
    out, _dropped = benchmark(translate, body, drop_unsupported=True)
    assert out["contents"]
    _within(benchmark, REQUEST_BUDGET_US)


def gemini_response(words: int = 110) -> dict[str, Any]:
    """The Gemini twin of ``bodies.anthropic_response()``: one text part, same length."""
    text = orjson.loads(bodies.anthropic_response())["content"][0]["text"]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {
            "promptTokenCount": 25,
            "candidatesTokenCount": words,
            "totalTokenCount": 25 + words,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "qpc2afWVFJK4vr0Pq6WiyAU",
    }


def _gemini_responses() -> dict[str, dict[str, Any]]:
    out = {"small": gemini_response()}
    sample = _kit("gemini/generateContent.response.json")
    if sample is not None:
        out["tool_use"] = sample
    return out


@pytest.mark.parametrize("case", sorted(_gemini_responses()))
def test_response_gemini_to_unified(benchmark: Any, case: str) -> None:
    translate = _load("proxy.providers.gemini.response", "gemini_to_unified")
    out = benchmark(translate, _gemini_responses()[case], 1764061260)
    assert out["object"] == "chat.completion" and out["usage"]
    _within(benchmark, REQUEST_BUDGET_US)


def gemini_stream_events(chunks: int = bodies.STREAM_CHUNKS) -> list[dict[str, Any]]:
    """The Gemini twin of ``bodies.anthropic_stream()``: the same words, one per event."""
    deltas = [
        p["delta"]["text"]
        for n, p in ((n, orjson.loads(d)) for n, d in _events(bodies.anthropic_stream(chunks)))
        if n == "content_block_delta"
    ]
    events = []
    for i, word in enumerate(deltas):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": word}]}}
        if i == len(deltas) - 1:
            candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": 25, "totalTokenCount": 25 + i}
        events.append({"candidates": [candidate], "usageMetadata": usage,
                       "modelVersion": "gemini-2.5-flash", "responseId": "r"})  # fmt: skip
    return events


def test_stream_event_translation_gemini(benchmark: Any) -> None:
    """Per event, beside ``test_stream_event_translation`` (Anthropic) on the same text."""
    cls = _load("proxy.providers.gemini.stream", "GeminiToUnifiedStream")
    events = [(None, e) for e in gemini_stream_events()]
    produced = benchmark(_feed_all, cls, events)
    assert produced >= bodies.STREAM_CHUNKS
    _within(benchmark, EVENT_BUDGET_US, per=len(events))


def test_stream_event_with_json_gemini(benchmark: Any) -> None:
    cls = _load("proxy.providers.gemini.stream", "GeminiToUnifiedStream")
    events = [orjson.dumps(e) for e in gemini_stream_events()]

    def run() -> int:
        translator = cls(created=1764061260)
        size = 0
        for data in events:
            for _out_name, payload in translator.feed(None, orjson.loads(data)):
                size += len(b"data: " + orjson.dumps(payload) + b"\n\n")
        return size

    assert benchmark(run) > 0
    _within(benchmark, EVENT_BUDGET_US, per=len(events))
