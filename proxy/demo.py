"""``llm-edge-agent demo``: the whole product, offline, with no vendor key.

It starts the simulated vendor (real OpenAI and Anthropic wire formats on loopback), points the
shipped ``config.yaml`` at it, starts the gateway, and sends requests through the official
``openai`` and ``anthropic`` SDKs, printing each answer with the gateway's cost headers.
"""

from __future__ import annotations

import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from proxy.config.build import load_snapshot
from proxy.pricing import format_usd
from proxy.resources import default_config_path
from proxy.server.app import create_app
from proxy.sim.app import Sim
from proxy.sim.app import create_app as create_sim_app
from proxy.sim.faults import kit_dir
from proxy.sim.runner import BackgroundServer

DEMO_KEYS = {
    "OPENAI_API_KEY": "sk-demo-openai",
    "ANTHROPIC_API_KEY": "sk-ant-demo",
    "AZURE_OPENAI_API_KEY": "demo-azure-key",
    "COHERE_API_KEY": "co-demo",
    "GEMINI_API_KEY": "demo-gemini-key",
}
AZURE_MODEL, LOCAL_MODEL = "azure-gpt-4o", "local-llama"


def more_vendors(sim_url: str) -> dict[str, Any]:
    """An Azure deployment and a keyless local model (config.yaml has them as comments), on
    the simulator: ``providers`` and ``models`` to merge into a config."""
    return {
        "providers": {
            "azure": {
                "type": "azure_openai",
                "base_url": sim_url,
                "api_version": "2024-10-21",
                "api_key": "${AZURE_OPENAI_API_KEY}",
            },
            "local": {"type": "openai_compatible", "base_url": f"{sim_url}/compat/v1"},
        },
        "models": {
            AZURE_MODEL: {
                "provider": "azure",
                "upstream_model": "gpt-4o-prod",
                "price": {"input_per_1k": 0.0025, "output_per_1k": 0.010},
            },
            LOCAL_MODEL: {
                "provider": "local",
                "upstream_model": "llama3.1:8b",
                "price": {"input_per_1k": 0, "output_per_1k": 0},
            },
        },
    }


def demo_config(sim_url: str, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """The shipped config with every provider pointed at the simulator (plus ``extra``'s
    providers and models)."""
    data = yaml.safe_load(default_config_path().read_text())
    for provider in data["providers"].values():
        provider["base_url"] = f"{sim_url}/v1" if provider["type"] == "openai" else sim_url
    for section, entries in (extra or {}).items():
        data.setdefault(section, {}).update(entries)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def shipped_models() -> frozenset[str]:
    """Every upstream model id in the shipped config, so the simulator knows them all."""
    data = yaml.safe_load(default_config_path().read_text())
    return frozenset(m.get("upstream_model", name) for name, m in data["models"].items())


def _usd(number: float | None) -> str:
    """A JSON cost number as plain decimals (1.275e-05 -> 0.00001275)."""
    return "-" if number is None else format_usd(Decimal(repr(number)))


def _show(title: str, text: str, headers: Any) -> None:
    print(f"\n== {title}")
    print(f"   {text.strip()[:160]}")
    fields = (
        "x-llm-provider",
        "x-llm-model",
        "x-llm-input-tokens",
        "x-llm-output-tokens",
        "x-llm-cost-usd",
        "x-llm-attempts",
        "x-llm-overhead-ms",
    )
    print("   " + "  ".join(f"{f[6:]}={headers.get(f)}" for f in fields if headers.get(f)))


def _openai_calls(base_url: str) -> None:
    import openai

    client = openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="unused-by-the-sidecar", max_retries=0
    )
    for model in ("gpt-4o", "claude-3.5-sonnet", AZURE_MODEL, "gemini-2.5-flash"):
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What does a sidecar proxy do?"},
            ],
        )
        reply = raw.parse()
        _show(f"openai SDK -> {model}", reply.choices[0].message.content or "", raw.headers)
        print(f"   usage.cost={_usd(reply.usage.model_extra.get('cost'))}")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream me a short answer."}],
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    print(f"\n== openai SDK -> gpt-4o-mini (stream, {len(pieces)} chunks)")
    print(f"   {''.join(pieces)[:160]}")
    if usage is not None:
        print(
            f"   tokens in={usage.prompt_tokens} out={usage.completion_tokens} "
            f"cost={_usd(usage.model_extra.get('cost'))}"
        )


def _responses_call(base_url: str) -> None:
    """One Responses API call (what the Agents SDK and Codex CLI speak), routed to Claude."""
    import openai

    client = openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="unused-by-the-sidecar", max_retries=0
    )
    raw = client.responses.with_raw_response.create(
        model="claude-3.5-sonnet",
        instructions="You are terse.",
        input="What does the Responses API add over Chat Completions?",
    )
    response = raw.parse()
    _show("openai SDK responses.create -> claude-3.5-sonnet", response.output_text, raw.headers)
    usage = response.usage.model_dump() if response.usage else {}
    print(f"   {response.id} status={response.status} usage.cost={_usd(usage.get('cost'))}")


def _anthropic_calls(base_url: str) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key="unused-by-the-sidecar", max_retries=0)
    for model in ("claude-3-haiku", "gpt-4o-mini", LOCAL_MODEL, "gemini-2.5-pro"):
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=200,
            messages=[{"role": "user", "content": "Name one benefit of a gateway."}],
        )
        message = raw.parse()
        text = "".join(b.text for b in message.content if b.type == "text")
        _show(f"anthropic SDK -> {model}", text, raw.headers)


def run_demo() -> int:
    try:
        import anthropic  # noqa: F401
        import openai  # noqa: F401
    except ImportError:
        print(
            "The demo drives the gateway with the official SDKs: "
            "pip install 'llm-edge-agent[demo]'",
            file=sys.stderr,
        )
        return 2
    sim = Sim(
        openai_key=DEMO_KEYS["OPENAI_API_KEY"],
        anthropic_key=DEMO_KEYS["ANTHROPIC_API_KEY"],
        azure_key=DEMO_KEYS["AZURE_OPENAI_API_KEY"],
        cohere_key=DEMO_KEYS["COHERE_API_KEY"],
        gemini_key=DEMO_KEYS["GEMINI_API_KEY"],
        extra_models=shipped_models(),
        # In a checkout the vendor kit sits beside the repo: check every request against it.
        validate=kit_dir().is_dir(),
    )
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(lambda: create_sim_app(sim)) as up:
        path = demo_config(up.url, Path(tmp), more_vendors(up.url))
        snapshot = load_snapshot(path, environ=DEMO_KEYS)
        with BackgroundServer(lambda: create_app(snapshot)) as gateway:
            print(
                f"simulated vendor on {up.url}; llm-edge-agent on {gateway.url} "
                f"({len(snapshot.models)} models: the shipped config.yaml, an Azure deployment "
                "and a local model)"
            )
            _openai_calls(gateway.url)
            _responses_call(gateway.url)
            _anthropic_calls(gateway.url)
    print("\nAll answers came through llm-edge-agent; costs use the prices in config.yaml.")
    return 0
