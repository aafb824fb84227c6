from decimal import Decimal

import pytest

from proxy.pricing import Price, Usage, cheapest, cost, format_usd, unknown_usage, usd_number
from tests.kit import sample

GPT4 = Price(Decimal("0.03"), Decimal("0.06"))


def test_exact_cost_without_float_drift():
    amount = cost(GPT4, Usage(prompt_tokens=1234, completion_tokens=567))
    assert amount == Decimal("0.07104")
    assert format_usd(amount) == "0.07104"
    assert usd_number(amount) == 0.07104


def test_tiny_prices_stay_exact():
    haiku = Price(Decimal("0.00025"), Decimal("0.00125"))
    assert format_usd(cost(haiku, Usage(prompt_tokens=7, completion_tokens=3))) == "0.0000055"


def test_cache_buckets_priced_apart_and_default_to_input():
    price = Price(Decimal("0.003"), Decimal("0.015"), Decimal("0.0003"), Decimal("0.00375"))
    usage = Usage(
        prompt_tokens=3000, completion_tokens=100, cached_tokens=1000, cache_write_tokens=1000
    )
    assert cost(price, usage) == Decimal("0.003") + Decimal("0.0003") + Decimal(
        "0.00375"
    ) + Decimal("0.0015")
    plain = Price(Decimal("0.003"), Decimal("0.015"))
    assert cost(plain, usage) == cost(plain, Usage(prompt_tokens=3000, completion_tokens=100))


def test_usage_from_vendor_samples_agree():
    openai = Usage.from_openai(sample("openai/chat.response.tool_calls.json")["usage"])
    anthropic = Usage.from_anthropic(sample("anthropic/messages.response.tool_use.json")["usage"])
    assert (
        openai.prompt_tokens
        == openai.uncached_input_tokens + openai.cached_tokens + openai.cache_write_tokens
    )
    assert (
        anthropic.uncached_input_tokens
        == sample("anthropic/messages.response.tool_use.json")["usage"]["input_tokens"]
    )


def test_zero_and_missing_usage():
    assert format_usd(cost(GPT4, Usage())) == "0"
    assert Usage.from_openai(None) == Usage()
    assert Usage.from_anthropic({}) == Usage()


@pytest.mark.parametrize(
    "usage", [None, {}, "n/a", {"prompt_tokens": None, "completion_tokens": None}]
)
def test_usage_not_reported_is_unknown_not_zero(usage):
    assert Usage.read_openai(usage) is None
    assert Usage.read_anthropic(usage) is None


def test_reported_usage_is_read():
    assert Usage.read_openai({"prompt_tokens": 0, "completion_tokens": 0}) == Usage()
    assert Usage.read_anthropic({"output_tokens": 3}) == Usage(completion_tokens=3)
    assert unknown_usage("openai") == dict.fromkeys(
        ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    assert unknown_usage("anthropic") == {"input_tokens": None, "output_tokens": None}


def test_cheapest():
    assert cheapest([("a", GPT4), ("b", Price(Decimal("0.001"), Decimal("0.002")))]) == "b"
    assert cheapest([]) is None
