"""The command line's model questions: capabilities, prices against the catalog, the cheapest
model for a need, a cost's arithmetic, and provider health with its exit status."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
import yaml

from proxy.cli import main
from tests.conftest import ENVIRON, gateway_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = str(REPO / "config.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_shows_capabilities(capsys):
    code, out, _ = run(capsys, "models", "--config", SHIPPED)
    assert code == 0
    header, *rows = out.splitlines()
    assert "CAPABILITIES" in header and "CONTEXT" in header
    o1 = next(r for r in rows if r.startswith("o1-preview "))
    assert "-tools" in o1 and "-system_prompt" in o1 and "128k" in o1


def test_check_prices_lists_differences_with_dates_and_exits_1(capsys):
    code, out, _ = run(capsys, "models", "--check-prices", "--config", SHIPPED)
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("o1-mini:"))
    assert "input 0.003 (catalog 0.0011)" in line and "output 0.012 (catalog 0.0044)" in line
    assert "as_of not given" in line
    assert not any(x.startswith("gpt-4o:") for x in out.splitlines())  # same as the catalog
    assert "genai-prices 0.2.3" in out.splitlines()[-1]


def test_check_prices_exits_0_when_all_agree(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        textwrap.dedent(
            """
            providers: {openai: {type: openai, base_url: "https://api.openai.com/v1"}}
            models:
              gpt-4o: {provider: openai, price: {input_per_1k: 0.0025, output_per_1k: 0.01,
                       as_of: 2026-11-01}}
              o1: {provider: openai}
            """
        )
    )
    code, out, _ = run(capsys, "models", "--check-prices", "--config", str(path))
    assert code == 0 and out.startswith("0 configured price(s) differ")
    code, _, err = run(capsys, "check", str(path))
    assert code == 0 and "catalog" not in err


def test_check_warns_on_stale_prices(capsys):
    code, out, err = run(capsys, "check", SHIPPED)
    assert code == 0 and out.strip().endswith(": ok")
    assert "warning:" in err and "models.o1-mini: input 0.003 (catalog 0.0011)" in err


def test_cheapest_for_provider_and_needs(capsys):
    code, out, _ = run(capsys, "models", "--cheapest", "--provider", "anthropic",
                       "--config", SHIPPED)  # fmt: skip
    assert code == 0 and out.startswith("claude-3-haiku-20240307 (anthropic): $0.0015 for 1000")
    code, out, _ = run(capsys, "models", "--cheapest", "--needs", "tools,vision,json_schema",
                       "--input", "2000", "--output", "100", "--config", SHIPPED)  # fmt: skip
    assert out.startswith("gpt-4o-mini (openai): $0.00036 for 2000 input + 100 output tokens")
    code, _, err = run(capsys, "models", "--cheapest", "--provider", "anthropic",
                       "--needs", "json_schema", "--config", SHIPPED)  # fmt: skip
    assert code == 1 and "no configured model" in err  # unknown is not "has it"


def test_cheapest_rejects_an_unknown_capability(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["models", "--cheapest", "--needs", "telepathy", "--config", SHIPPED])
    assert caught.value.code == 2
    assert "unknown capability telepathy" in capsys.readouterr().err


def test_cost_explains_the_arithmetic(capsys):
    code, out, _ = run(capsys, "cost", "gpt-4o", "--input", "1000", "--output", "500",
                       "--cached", "400", "--config", SHIPPED)  # fmt: skip
    first, *explained = out.splitlines()
    assert code == 0 and first == "0.007"
    text = "\n".join(explained)
    assert "600 tokens x $0.0025/1K = $0.0015" in text
    assert "400 tokens x $0.00125/1K = $0.0005" in text
    assert "500 tokens x $0.01/1K = $0.005" in text
    assert "from the config (as_of 2026-11-25)" in text


def test_cost_of_a_catalog_priced_model_says_so(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    data = {"providers": {"openai": {"type": "openai", "base_url": "https://x.test/v1"}},
            "models": {"o1": {"provider": "openai"}}}  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    code, out, _ = run(capsys, "cost", "o1", "--input", "1000", "--output", "1000",
                       "--config", str(path))  # fmt: skip
    assert code == 0 and out.splitlines()[0] == "0.075"
    assert "from the catalog (genai-prices 0.2.3" in out


def test_health_ok_against_the_simulator(capsys, sim, tmp_path, monkeypatch):
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    path = gateway_config(sim.url, tmp_path)
    code, out, _ = run(capsys, "health", "--config", str(path))
    lines = sorted(out.splitlines())
    providers = sorted(yaml.safe_load(path.read_text())["providers"])
    assert code == 0 and len(lines) == len(providers)
    for name, line in zip(providers, lines, strict=True):
        assert line.startswith(f"{name}: OK (") and line.endswith("ms)")


def test_health_fail_exits_1(capsys, sim, tmp_path, monkeypatch):
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    overrides = {"providers": {"anthropic": {"base_url": f"http://127.0.0.1:{port}"}}}
    path = gateway_config(sim.url, tmp_path, overrides)
    code, out, _ = run(capsys, "health", "--config", str(path))
    assert code == 1
    assert "openai: OK (" in out
    assert "anthropic: FAIL - " in out
