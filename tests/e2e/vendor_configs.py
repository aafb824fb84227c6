"""Config overrides that add Azure OpenAI and OpenAI-compatible providers on the simulator, and
the checks the tests of both share (exact cost, credentials never leaking upstream)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from proxy.demo import more_vendors
from proxy.pricing import Price, Usage, cost, format_usd
from tests.conftest import CLIENT_KEY, SimHandle, deep_merge

AZURE_KEY = "azure-test-key-0123456789"
AZURE_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-test-token"
COMPAT_KEY = "compat-test-key"
ENVIRON = {
    "AZURE_OPENAI_API_KEY": AZURE_KEY,
    "AZURE_AD_TOKEN": AZURE_TOKEN,
    "COMPAT_KEY": COMPAT_KEY,
}
AZURE, AZURE_V1, LOCAL, KEYED = "azure-gpt-4o", "azure-v1", "local-llama", "keyed-llama"
REASONER, MISSING, WRONG_VERSION = "local-reasoner", "azure-missing", "azure-wrong-version"
PRICES = {
    AZURE: Price(Decimal("0.0025"), Decimal("0.010")),
    AZURE_V1: Price(Decimal("0.0025"), Decimal("0.010")),
    LOCAL: Price(Decimal("0.0001"), Decimal("0.0002")),
    KEYED: Price(Decimal("0.0001"), Decimal("0.0002")),
    REASONER: Price(Decimal("0.00055"), Decimal("0.00219")),
}
UPSTREAM_MODEL = {
    AZURE: "gpt-4o-prod",
    AZURE_V1: "gpt-4o-prod",
    LOCAL: "llama3.1:8b",
    KEYED: "llama3.1:8b",
}
PATH = {
    AZURE: "/openai/deployments/gpt-4o-prod/chat/completions",
    AZURE_V1: "/openai/v1/chat/completions",
    LOCAL: "/compat/v1/chat/completions",
    KEYED: "/compat/v1/chat/completions",
}
ALL = [AZURE, AZURE_V1, LOCAL, KEYED]


def _price(model: str) -> dict[str, float]:
    price = PRICES[model]
    return {"input_per_1k": float(price.input_per_1k), "output_per_1k": float(price.output_per_1k)}


def overrides(sim_url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's Azure deployment and keyless local model, plus an Azure v1 provider with an
    Entra ID token, a keyed compatible server, a reasoning model and two broken Azure models."""
    base = more_vendors(sim_url)
    providers = {
        **base["providers"],
        "azure_v1": {
            "type": "azure_openai",
            "base_url": sim_url,
            "azure_ad_token": "${AZURE_AD_TOKEN}",
        },
        "keyed": {
            "type": "openai_compatible",
            "base_url": f"{sim_url}/compat/v1",
            "api_key": "${COMPAT_KEY}",
        },
        "azure_old": {
            "type": "azure_openai",
            "base_url": sim_url,
            "api_version": "2019-01-01",  # well-formed, but no such version: Azure's bare 404
            "api_key": "${AZURE_OPENAI_API_KEY}",
        },
    }
    models = {
        AZURE: {"provider": "azure", "upstream_model": "gpt-4o-prod", "price": _price(AZURE)},
        AZURE_V1: {"provider": "azure_v1", "upstream_model": "gpt-4o-prod", "price": _price(AZURE)},
        LOCAL: {"provider": "local", "upstream_model": "llama3.1:8b", "price": _price(LOCAL)},
        KEYED: {"provider": "keyed", "upstream_model": "llama3.1:8b", "price": _price(KEYED)},
        REASONER: {
            "provider": "local",
            "upstream_model": "deepseek-reasoner",
            "price": _price(REASONER),
        },
        MISSING: {
            "provider": "azure",
            "upstream_model": "no-such-deployment",
            "price": _price(AZURE),
        },
        WRONG_VERSION: {
            "provider": "azure_old",
            "upstream_model": "gpt-4o-prod",
            "price": _price(AZURE),
        },
    }
    return deep_merge({"providers": providers, "models": models}, extra or {})


def configure_sim(sim: SimHandle, **changes: Any) -> None:
    """Strict fakes: Azure wants its key (or the Entra ID token); the compatible server is
    keyless unless a test says otherwise."""
    sim.sim.configure(azure_key=AZURE_KEY, azure_token=AZURE_TOKEN, **changes)


def expected_cost(model: str, usage: Usage) -> str:
    return format_usd(cost(PRICES[model], usage))


def last_post(sim: SimHandle) -> Any:
    """The last completion request any fake vendor received."""
    return [r for r in sim.sim.received if r.method == "POST"][-1]


def assert_credentials(sim: SimHandle, model: str) -> None:
    """The right auth header reached the vendor, and never the client's own key."""
    record = last_post(sim)
    headers = record.headers
    assert CLIENT_KEY not in str(headers)
    assert "x-api-key" not in headers
    if model == AZURE:
        assert headers["api-key"] == AZURE_KEY and "authorization" not in headers
    elif model == AZURE_V1:
        assert headers["authorization"] == f"Bearer {AZURE_TOKEN}" and "api-key" not in headers
    elif model == KEYED:
        assert headers["authorization"] == f"Bearer {COMPAT_KEY}"
    else:
        assert "authorization" not in headers and "api-key" not in headers
