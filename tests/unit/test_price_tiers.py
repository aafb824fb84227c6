"""Long-prompt price tiers: a request past a tier's prompt size is billed wholly at its prices."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from proxy.catalog.report import explain_cost
from proxy.config.build import load_snapshot
from proxy.config.loader import ConfigError
from proxy.pricing import Price, Usage, cost

D = Decimal
LONG = Price(D("0.0025"), D("0.015"), D("0.00025"))
PRO = Price(D("0.00125"), D("0.010"), D("0.000125"), tiers=((200_000, LONG),))


def test_a_prompt_up_to_the_threshold_pays_the_base_price() -> None:
    usage = Usage(prompt_tokens=200_000, completion_tokens=1000)
    assert cost(PRO, usage) == D("0.25") + D("0.01")


def test_a_longer_prompt_pays_the_tier_for_every_bucket() -> None:
    usage = Usage(prompt_tokens=250_000, completion_tokens=1000, cached_tokens=50_000)
    assert cost(PRO, usage) == D("0.5") + D("0.0125") + D("0.015")


def test_cached_tokens_count_toward_the_prompt_size() -> None:
    usage = Usage(prompt_tokens=200_001, cached_tokens=200_000)
    assert PRO.for_prompt(usage.prompt_tokens) is LONG


def test_the_highest_tier_passed_wins_and_unset_cache_prices_are_the_tiers_input() -> None:
    mid, top = Price(D("2"), D("2")), Price(D("3"), D("3"))
    price = Price(D("1"), D("1"), D("0.1"), tiers=((10, mid), (20, top)))
    assert [price.for_prompt(n) for n in (10, 11, 20, 21)] == [price, mid, mid, top]
    assert cost(price, Usage(prompt_tokens=21, cached_tokens=21)) == D("21") * 3 / 1000


def config(tmp_path: Path, tiers: str) -> Path:
    path = tmp_path / "config.yaml"
    text = f"""\
        providers:
          gemini:
            type: gemini
            base_url: "https://generativelanguage.googleapis.com"
            api_key: k
        models:
          gemini-2.5-pro:
            provider: gemini
            price:
              input_per_1k: 0.00125
              output_per_1k: 0.010
              tiers: {tiers}
        """
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_config_tiers_are_exact_and_sorted(tmp_path: Path) -> None:
    tiers = (
        "[{above_prompt_tokens: 500000, input_per_1k: 0.005, output_per_1k: 0.02},"
        " {above_prompt_tokens: 200000, input_per_1k: 0.0025, output_per_1k: 0.015,"
        " cache_read_per_1k: 0.00025}]"
    )
    snapshot = load_snapshot(config(tmp_path, tiers), {})
    price = snapshot.models["gemini-2.5-pro"].price
    assert [above for above, _ in price.tiers] == [200_000, 500_000]
    assert price.tiers[0][1] == Price(D("0.0025"), D("0.015"), D("0.00025"))
    assert price.for_prompt(600_000).input_per_1k == D("0.005")


@pytest.mark.parametrize(
    ("tiers", "where", "message"),
    [
        (
            "[{above_prompt_tokens: 9, input_per_1k: 1, output_per_1k: 1},"
            " {above_prompt_tokens: 9, input_per_1k: 2, output_per_1k: 2}]",
            "models.gemini-2.5-pro.price.tiers[1].above_prompt_tokens",
            "a tier above 9 tokens is already set",
        ),
        (
            "[{above_prompt_tokens: 0, input_per_1k: 1, output_per_1k: 1}]",
            "models.gemini-2.5-pro.price.tiers[0].above_prompt_tokens",
            "must be >= 1 (got 0)",
        ),
        (
            "[{input_per_1k: 1, output_per_1k: 1}]",
            "models.gemini-2.5-pro.price.tiers[0]",
            "missing required key 'above_prompt_tokens'",
        ),
    ],
)
def test_bad_tiers_are_problems_with_their_path(
    tmp_path: Path, tiers: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_snapshot(config(tmp_path, tiers), {})
    assert (where, message) in [(p.path, p.message) for p in caught.value.problems]


def test_the_cost_explanation_names_the_tier(tmp_path: Path) -> None:
    tiers = "[{above_prompt_tokens: 200000, input_per_1k: 0.0025, output_per_1k: 0.015}]"
    model = load_snapshot(config(tmp_path, tiers), {}).models["gemini-2.5-pro"]
    lines = explain_cost(model, Usage(prompt_tokens=250_000, completion_tokens=10), None)
    assert "$0.0025/1K" in lines[0] and lines[-1].endswith("(as_of not given)")
    assert "  (the long-prompt tier: prompts above 200000 tokens)" in lines
