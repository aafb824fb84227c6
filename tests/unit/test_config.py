"""The config subsystem end to end: real files in tmp_path through load_snapshot and check."""

from __future__ import annotations

import dataclasses
import hashlib
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from proxy.config.build import check, load_snapshot
from proxy.config.loader import ConfigError, Problem, interpolate, load_document
from proxy.config.validate import validate
from proxy.providers.registry import VENDORS

REPO = Path(__file__).resolve().parents[2]
CANARY = "sk-CANARY-7f3a9c1e-never-print-me"

MINIMAL = """\
providers:
  openai: {type: openai, base_url: "https://api.openai.com/v1", api_key: "${KEY}"}
models:
  gpt-4:
    provider: openai
    price: {input_per_1k: 0.03, output_per_1k: 0.06}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_snapshot(path, environ or {})
    return caught.value.problems


# --- the shipped config --------------------------------------------------------------------

SHIPPED_PRICES = {
    "gpt-4": ("0.030", "0.060"),
    "gpt-4-turbo": ("0.010", "0.030"),
    "gpt-4-turbo-preview": ("0.010", "0.030"),
    "gpt-3.5-turbo": ("0.0005", "0.0015"),
    "gpt-3.5-turbo-16k": ("0.0005", "0.0015"),
    "o1-preview": ("0.015", "0.060"),
    "o1-mini": ("0.003", "0.012"),
    "claude-3-5-sonnet-20241022": ("0.003", "0.015"),
    "claude-3-opus-20240229": ("0.015", "0.075"),
    "claude-3-sonnet-20240229": ("0.003", "0.015"),
    "claude-3-haiku-20240307": ("0.00025", "0.00125"),
    "gpt-4o": ("0.0025", "0.010"),
    "gpt-4o-mini": ("0.00015", "0.0006"),
    "claude-3-5-haiku-20241022": ("0.0008", "0.004"),
}
SHIPPED_ALIASES = {
    "claude-3.5-sonnet": "claude-3-5-sonnet-20241022",
    "claude-3-opus": "claude-3-opus-20240229",
    "claude-3-sonnet": "claude-3-sonnet-20240229",
    "claude-3-haiku": "claude-3-haiku-20240307",
    "claude-3.5-haiku": "claude-3-5-haiku-20241022",
}


def test_shipped_config_loads_without_keys_and_has_the_table_prices() -> None:
    snapshot = load_snapshot(REPO / "config.yaml", {})
    for name, (inp, out) in SHIPPED_PRICES.items():
        price = snapshot.models[name].price
        assert (price.input_per_1k, price.output_per_1k) == (Decimal(inp), Decimal(out)), name
        assert snapshot.models[name].upstream_model == name
    for alias, name in SHIPPED_ALIASES.items():
        assert snapshot.resolve(alias) is snapshot.models[name]
    assert {"openai", "anthropic", "cohere"} <= {p.type for p in snapshot.providers.values()}
    assert snapshot.providers["cohere"].base_url == "https://api.cohere.com"
    assert snapshot.resolve("command-r-plus") is snapshot.models["command-r-plus-08-2024"]
    assert snapshot.models["command-a-03-2025"].price.output_per_1k == Decimal("0.010")
    assert snapshot.providers["openai"].base_url == "https://api.openai.com/v1"
    assert snapshot.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert snapshot.providers["openai"].pool.max_idle_per_host == 20
    assert snapshot.models["gpt-4"].retry.max_retries == 3
    assert snapshot.models["gpt-4"].timeouts.request_ms == 30000
    assert len(snapshot.warnings) == len(snapshot.providers)  # one empty key each
    assert all("api_key" in warning for warning in snapshot.warnings)


def test_shipped_current_models_carry_a_price_date_and_cache_prices() -> None:
    snapshot = load_snapshot(REPO / "config.yaml", {})
    for name in ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022"):
        assert snapshot.models[name].price_date
    haiku = snapshot.models["claude-3-5-haiku-20241022"].price
    assert haiku.cache_read_per_1k == haiku.input_per_1k / 10
    assert haiku.cache_write_per_1k == haiku.input_per_1k * Decimal("1.25")
    assert snapshot.models["gpt-4o-mini"].fallbacks == ("claude-3-5-haiku-20241022",)


def test_shipped_config_checks_clean_with_keys_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    monkeypatch.setenv("COHERE_API_KEY", CANARY)
    monkeypatch.setenv("GEMINI_API_KEY", CANARY)
    assert check(REPO / "config.yaml") == ([], [])


# --- interpolation ---------------------------------------------------------------------------


def test_interpolation_defaults_and_escape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        providers:
          openai:
            type: openai
            base_url: ${BASE:-https://api.openai.com/v1}
            api_key: ${KEY}
            headers:
              x-note: "cost $${NOT_A_VAR} for ${WHO:-nobody}"
              x-empty: "${EMPTY:-fallback}"
        models:
          gpt-4:
            provider: openai
            price: {input_per_1k: 0.03, output_per_1k: 0.06}
        retry: {max_retries: "${RETRIES:-2}", jitter: ${JITTER}}
        timeouts: {first_byte_ms: ${FIRST_BYTE:-}}
        """,
    )
    env = {"KEY": "12345", "EMPTY": "", "JITTER": "0.25"}
    snapshot = load_snapshot(path, env)
    provider = snapshot.providers["openai"]
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.api_key == "12345"  # a key stays a string even when it looks like a number
    assert provider.headers == {"x-note": "cost ${NOT_A_VAR} for nobody", "x-empty": "fallback"}
    assert provider.retry.max_retries == 2 and provider.retry.jitter == 0.25
    assert provider.timeouts.first_byte_ms is None


CONTRACT_EXAMPLE = """\
providers:
  openai:    {type: openai,    base_url: https://api.openai.com/v1, api_key: ${OPENAI_API_KEY}}
  anthropic: {type: anthropic, base_url: https://api.anthropic.com, api_key: ${ANTHROPIC_API_KEY}}
models:
  gpt-4:
    provider: openai
    upstream_model: gpt-4            # optional; defaults to the key
    aliases: [gpt4]                  # optional
    price: {input_per_1k: 0.03, output_per_1k: 0.06}
retry:    {max_retries: 3, initial_backoff_ms: 100, max_backoff_ms: 5000}
timeouts: {connect_ms: 5000, request_ms: 30000}
pool:     {max_idle_per_host: 20, idle_timeout_s: 90, tcp_keepalive_s: 60}
"""


def test_the_contract_example_loads_references_inside_flow_mappings_included(
    tmp_path: Path,
) -> None:
    # Plain YAML cannot parse ${VAR} inside {...}; the loader shields references first.
    path = write(tmp_path, CONTRACT_EXAMPLE)
    snapshot = load_snapshot(path, {"OPENAI_API_KEY": "ko", "ANTHROPIC_API_KEY": "ka"})
    assert snapshot.providers["openai"].api_key == "ko"
    assert snapshot.providers["anthropic"].api_key == "ka"
    assert snapshot.resolve("gpt4").price.output_per_1k == Decimal("0.06")
    [unset] = problems_of(path, {"OPENAI_API_KEY": "ko"})
    assert (unset.path, unset.line) == ("providers.anthropic.api_key", 3)


def test_interpolate_rules() -> None:
    env = {"A": "x", "E": ""}
    assert interpolate("${A}-${A:-d}-${E:-d}-${U:-d}-$${A}", env) == ("x-x-d-d-${A}", [])
    assert interpolate("${E}", env) == ("", [])
    _, errors = interpolate("${U}", env)
    assert errors == ["environment variable U is not set (write ${U:-} to allow it)"]
    assert interpolate("${not-a-name}", env)[1] and interpolate("${A", env)[1]


def test_unset_variable_is_a_problem_with_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    [problem] = problems_of(path)
    assert (problem.path, problem.line) == ("providers.openai.api_key", 2)
    assert "KEY is not set" in problem.message
    assert str(problem).startswith(f"{path}:2: providers.openai.api_key: ")


def test_a_number_from_the_environment_that_is_not_a_number_is_a_type_problem(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, MINIMAL + "retry: {max_retries: ${RETRIES}}\n")
    [problem] = problems_of(path, {"KEY": "k", "RETRIES": "three"})
    assert (problem.path, problem.line) == ("retry.max_retries", 7)
    assert problem.message == "expected integer, got string"


# --- problems: one line each, with path and line ---------------------------------------------


def test_typo_wrong_type_and_missing_provider_give_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        providers:
          openai:
            type: openai
            base_url: https://api.openai.com/v1
            api_key: k
        models:
          gpt-4:
            provider: openai
            price: {input_per_1k: 0.03, output_per_1k: 0.06}
          claude:
            provider: anthropc
            price: {input_per_1k: 0.003, output_per_1k: 0.015}
        retyr:
          max_retries: 2
        timeouts:
          connect_ms: soon
        """,
    )
    lines = [str(p) for p in problems_of(path)]
    assert lines == [
        f"{path}:11: models.claude.provider: provider 'anthropc' is not defined under providers",
        f"{path}:13: retyr: unknown key 'retyr' (did you mean 'retry'?)",
        f"{path}:16: timeouts.connect_ms: expected integer, got string",
    ]
    problems, warnings = check(path)
    assert problems == lines and warnings == []


def test_semantic_problems_point_at_their_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        providers:
          openai: {type: openia, base_url: "https://api.openai.com/v1", api_key: k}
        models:
          a:
            provider: openai
            aliases: [b, a]
            fallbacks: [zz, a]
            price: {input_per_1k: 1, output_per_1k: 1, as_of: 2024-02-30}
          b:
            provider: openai
            price: {input_per_1k: -1, output_per_1k: 1}
        server: {auth: {tokens_env: [GATEWAY_TOKEN]}}
        """,
    )
    found = {(p.path, p.line): p.message for p in problems_of(path)}
    assert found == {
        ("providers.openai.type", 2): "unknown provider type 'openia' (did you mean 'openai'?); "
        f"known: {', '.join(VENDORS)}",  # every registered type
        ("models.a.aliases[0]", 6): "alias 'b' is already used by model 'b'",
        ("models.a.aliases[1]", 6): "alias 'a' repeats the model's own name",
        ("models.a.fallbacks[0]", 7): "fallback 'zz' is not a configured model",
        ("models.a.fallbacks[1]", 7): "model 'a' cannot fall back to itself",
        ("models.a.price.as_of", 8): "must be a date YYYY-MM-DD",
        ("models.b.price.input_per_1k", 11): "must be >= 0 (got -1)",
        ("server.auth.tokens_env[0]", 12): "environment variable GATEWAY_TOKEN is not set or "
        "empty; no token would be accepted from it",
    }


def test_missing_required_keys_and_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        providers:
          openai: {type: openai, api_key: k}
        models:
          gpt-4:
            provider: openai
          gpt-4:
            provider: openai
            price: {input_per_1k: 1, output_per_1k: 1}
        """,
    )
    lines = [(p.path, p.line, p.message) for p in problems_of(path)]
    assert ("providers.openai", 2, "missing required key 'base_url'") in lines
    assert ("models.gpt-4", 6, "duplicate key 'gpt-4' (first on line 4)") in lines


def test_yaml_syntax_error_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "retry: {max_retries: 2\ntimeouts: {}\n")
    [problem] = problems_of(path, {"KEY": "k"})
    assert problem.line == 8
    assert str(problem).startswith(f"{path}:8: YAML syntax error: ")
    assert "\n" not in str(problem)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    [missing] = problems_of(tmp_path / "nope.yaml")
    assert "cannot read" in missing.message and missing.line is None
    [listing] = problems_of(write(tmp_path, "- a\n- b\n"))
    assert (listing.line, listing.message) == (1, "the top level must be a mapping")
    [empty] = problems_of(write(tmp_path, "# nothing\n"))
    assert empty.message == "the file is empty"


def test_load_document_indexes_lines_by_path(tmp_path: Path) -> None:
    data, lines, problems = load_document(write(tmp_path, MINIMAL), {"KEY": "k"})
    assert problems == []
    assert data["models"]["gpt-4"]["price"]["input_per_1k"] == 0.03
    assert lines.line(("models", "gpt-4", "price", "input_per_1k")) == 6
    assert lines.line("models.gpt-4.provider") == 5
    assert lines.line(("models", "gpt-4", "no-such-key")) == 4  # nearest ancestor


# --- building the snapshot -------------------------------------------------------------------


def test_overrides_merge_field_by_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        providers:
          p:
            type: openai
            base_url: http://127.0.0.1:9/v1/
            api_key: k
            retry: {max_retries: 5, max_backoff_ms: 900}
            timeouts: {request_ms: 20000}
            pool: {max_connections: 7}
            breaker: {cooldown_s: 3}
            drop_unsupported_params: true
          q: {type: anthropic, base_url: "http://127.0.0.1:9", api_key: k}
        models:
          m:
            provider: p
            upstream_model: vendor-id
            retry: {max_retries: 0}
            timeouts: {first_byte_ms: 1500}
            max_tokens: 1024
            price: {input_per_1k: 0.1, output_per_1k: 0.2}
          n:
            provider: q
            drop_unsupported_params: true
            price: {input_per_1k: 0.1, output_per_1k: 0.2}
        retry: {initial_backoff_ms: 50, max_backoff_ms: 800}
        timeouts: {connect_ms: 1000}
        pool: {max_idle_per_host: 4, max_connections: 50}
        breaker: {enabled: false}
        """,
    )
    snapshot = load_snapshot(path, {})
    m, n = snapshot.models["m"], snapshot.models["n"]
    assert (m.retry.max_retries, m.retry.initial_backoff_ms, m.retry.max_backoff_ms) == (0, 50, 900)
    assert m.retry.jitter == 0.1
    assert (m.timeouts.connect_ms, m.timeouts.request_ms, m.timeouts.first_byte_ms) == (
        1000,
        20000,
        1500,
    )
    assert (m.upstream_model, m.max_tokens, m.drop_unsupported_params) == ("vendor-id", 1024, True)
    assert (n.upstream_model, n.max_tokens, n.retry.max_retries) == ("n", 4096, 3)
    assert n.drop_unsupported_params is True
    p, q = snapshot.providers["p"], snapshot.providers["q"]
    assert p.base_url == "http://127.0.0.1:9/v1"
    assert (p.retry.max_retries, p.retry.initial_backoff_ms) == (5, 50)
    assert (p.pool.max_idle_per_host, p.pool.max_connections, q.pool.max_connections) == (4, 7, 50)
    assert (p.breaker.enabled, p.breaker.cooldown_s, q.breaker.cooldown_s) == (False, 3, 30)
    assert q.retry.max_retries == 3 and q.timeouts.request_ms == 30000


def test_snapshot_identity_prices_and_auth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("gpt-4:\n", "gpt-4:\n    aliases: [gpt4]\n")
        + "server:\n  auth: {tokens_env: [T1, T2], protect_ops_endpoints: true}\n",
    )
    snapshot = load_snapshot(path, {"KEY": "k", "T1": "tok-1", "T2": "tok-2"})
    assert snapshot.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert snapshot.source == str(path) and snapshot.loaded_at > 0
    assert snapshot.resolve("gpt4") is snapshot.models["gpt-4"]
    assert snapshot.models["gpt-4"].price.input_per_1k == Decimal("0.03")  # not 0.0299999...
    assert snapshot.server.auth.tokens == ("tok-1", "tok-2")
    assert snapshot.server.auth.protect_ops_endpoints is True
    assert "tok-1" not in repr(snapshot)


def test_snapshot_is_immutable() -> None:
    snapshot = load_snapshot(REPO / "config.yaml", {})
    model = snapshot.models["gpt-4"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.version = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.price = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.models["gpt-5"] = model  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.lookup["x"] = model  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.providers["openai"].headers["x"] = "y"  # type: ignore[index]
    assert isinstance(model.aliases, tuple) and isinstance(model.fallbacks, tuple)


def test_api_key_never_in_repr_or_problems(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL, "good.yaml")
    snapshot = load_snapshot(good, {"KEY": CANARY})
    assert snapshot.providers["openai"].api_key == CANARY
    assert CANARY not in repr(snapshot) and CANARY not in str(snapshot)

    bad = write(
        tmp_path,
        f"""\
        providers:
          openai: {{type: openai, base_url: "${{KEY}}", api_key: "${{KEY}}", headers: [x]}}
          other: {{type: ${{KEY}}, base_url: "https://x.invalid", api_key: {{k: "{CANARY}"}}}}
        models:
          gpt-4:
            provider: ${{KEY}}
            upstream_model: 7
            aliases: ["${{KEY}}", "${{KEY}}"]
            fallbacks: ["${{KEY}}"]
            price: {{input_per_1k: "${{KEY}}", output_per_1k: 0.06}}
        """,
        "bad.yaml",
    )
    problems = problems_of(bad, {"KEY": CANARY})
    assert len(problems) >= 7
    text = "\n".join(str(p) for p in problems) + "\n".join(map(repr, problems))
    assert CANARY not in text
    lines, _ = check(bad)
    assert all(CANARY not in line for line in lines)


def test_keys_and_headers_with_line_breaks_are_problems_and_keys_are_stripped(
    tmp_path: Path,
) -> None:
    """A key file's trailing newline is stripped; a break inside a key or a header value would
    split the upstream request's headers, so it is a problem (the value is never shown)."""
    path = write(tmp_path, MINIMAL)
    assert load_snapshot(path, {"KEY": f" {CANARY}\n"}).providers["openai"].api_key == CANARY
    bad = write(
        tmp_path,
        """\
        providers:
          openai: {type: openai, base_url: "https://x.invalid", api_key: "${KEY}",
                   headers: {x-team: "a\\r\\nx-evil: 1"}}
        models:
          gpt-4: {provider: openai, price: {input_per_1k: 0.03, output_per_1k: 0.06}}
        """,
        "bad.yaml",
    )
    problems = problems_of(bad, {"KEY": f"{CANARY}\nx-injected: 1"})
    assert [p.path for p in problems] == [
        "providers.openai.api_key",
        "providers.openai.headers.x-team",
    ]
    assert all("line break" in p.message and CANARY not in str(p) for p in problems)


def test_anchors_merge_keys_and_whole_floats(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + "  gpt-4o: &base\n"
        + "    provider: openai\n"
        + "    max_tokens: 2048.0\n"
        + "    price: {input_per_1k: 0.0025, output_per_1k: 0.01}\n"
        + "  gpt-4o-copy:\n"
        + "    <<: *base\n"
        + "    upstream_model: gpt-4o\n"
        + "retry: {max_retries: 2.0}\n",
    )
    snapshot = load_snapshot(path, {"KEY": "k"})
    copy = snapshot.models["gpt-4o-copy"]
    assert (copy.upstream_model, copy.max_tokens) == ("gpt-4o", 2048)
    assert type(copy.max_tokens) is int and type(copy.retry.max_retries) is int


def test_non_finite_numbers_and_alias_bombs_are_problems(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("0.03,", ".nan,"))
    [nan] = problems_of(path, {"KEY": "k"})
    assert (nan.path, nan.line, nan.message) == (
        "models.gpt-4.price.input_per_1k",
        6,
        "must be a finite number",
    )
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    [too_big] = problems_of(write(tmp_path, "\n".join(bomb) + "\n"))
    assert "alias expansion" in too_big.message


def test_validate_accepts_the_vendor_types_it_is_given(tmp_path: Path) -> None:
    text = MINIMAL.replace("type: openai", "type: azure")
    data, lines, _ = load_document(write(tmp_path, text), {"KEY": "k"})
    assert validate(data, lines, known_types=["openai", "azure"]) == []
    [problem] = validate(data, lines, known_types=["openai"])
    assert problem.message == "unknown provider type 'azure'; known: openai"
