"""Implicit aliases through the SDKs: undated and -latest names of a configured dated snapshot
resolve to it; an undated name two snapshots share is a 404 listing both."""

from __future__ import annotations

import anthropic
import openai
import pytest

HELLO = [{"role": "user", "content": "hello"}]
CONFIG = {
    "models": {
        # a second Sonnet 3.5 snapshot makes the undated name ambiguous
        "claude-3-5-sonnet-20240620": {"provider": "anthropic"},
        # an undated model: its dated names are not implied
        "sim-undated": {"provider": "openai", "price": {"input_per_1k": 1, "output_per_1k": 1}},
    }
}


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(CONFIG)


@pytest.mark.parametrize("name", ["claude-3-haiku", "claude-3-haiku-latest"])
def test_undated_and_latest_names_resolve_to_the_dated_snapshot(gateway, sim, name):
    raw = gateway.anthropic().messages.with_raw_response.create(
        model=name, max_tokens=20, messages=HELLO
    )
    assert raw.parse().content
    assert raw.headers["x-llm-model"] == "claude-3-haiku-20240307"
    assert sim.completions()[-1].json["model"] == "claude-3-haiku-20240307"


def test_latest_is_the_newest_configured_snapshot(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="claude-3-5-sonnet-latest", messages=HELLO
    )
    assert raw.headers["x-llm-model"] == "claude-3-5-sonnet-20241022"


def test_an_ambiguous_name_is_a_404_listing_the_candidates(gateway, sim):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.openai().chat.completions.create(model="claude-3-5-sonnet", messages=HELLO)
    message = caught.value.body["message"]
    assert "ambiguous" in message
    assert "'claude-3-5-sonnet-20240620'" in message and "'claude-3-5-sonnet-20241022'" in message
    with pytest.raises(anthropic.NotFoundError) as caught_anthropic:
        gateway.anthropic().messages.create(
            model="claude-3-5-sonnet", max_tokens=20, messages=HELLO
        )
    assert "'claude-3-5-sonnet-20240620'" in caught_anthropic.value.body["error"]["message"]
    assert sim.completions() == []


def test_explicit_aliases_still_win(gateway, sim):
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="claude-3.5-sonnet", messages=HELLO
    )
    assert raw.headers["x-llm-model"] == "claude-3-5-sonnet-20241022"


def test_a_dated_name_never_maps_onto_an_undated_model(gateway, sim):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.openai().chat.completions.create(model="sim-undated-2024-08-06", messages=HELLO)
    assert "ambiguous" not in caught.value.body["message"]
    assert sim.completions() == []
