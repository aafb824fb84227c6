"""Config for azure_openai and openai_compatible: what ``check`` catches (with line numbers),
what the snapshot holds, and the token file that a change reloads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proxy.config.build import check, load_snapshot
from proxy.config.loader import ConfigError
from proxy.config.watch import load_if_changed, secret_files, snapshot_files_digest

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.token-body"
MODEL = """
models:
  gpt-4o:
    provider: azure
    upstream_model: gpt-4o-prod
    price: {input_per_1k: 0.0025, output_per_1k: 0.01}
"""


def write(tmp_path: Path, providers: str) -> Path:
    path = tmp_path / "config.yaml"
    body = textwrap.indent(textwrap.dedent(providers), "  ")
    path.write_text("providers:\n" + body + MODEL, encoding="utf-8")
    return path


def lines_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(path.parent)
    problems, _ = check(path)
    return [p.replace(str(path), "config.yaml") for p in problems]


def test_check_catches_what_ops_get_wrong_with_azure(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        """\
          azure:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
            api_key: k
            azure_ad_token: t
            api_version: "2024-10"
          bare:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
          empty:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
            api_key: ""
            api_version: 2024-10-21-preview
          local:
            type: openai_compatible
            base_url: http://127.0.0.1:8000/v1
            azure_ad_token: t
          openai:
            type: openai
            base_url: https://api.openai.com/v1
            api_key: k
            send_stream_options: false
        """,
    )
    assert lines_of(path, monkeypatch) == [
        "config.yaml:6: providers.azure.azure_ad_token: set only one of api_key, azure_ad_token:"
        " Azure takes one credential per request",
        "config.yaml:7: providers.azure.api_version: malformed api_version '2024-10': expected"
        " YYYY-MM-DD or YYYY-MM-DD-preview (e.g. 2024-10-21); omit it for the v1 API",
        "config.yaml:8: providers.bare: an azure_openai provider needs api_key or azure_ad_token"
        " (or azure_ad_token_file); none is set or all are empty",
        "config.yaml:14: providers.empty.api_key: an azure_openai provider needs api_key or"
        " azure_ad_token (or azure_ad_token_file); none is set or all are empty",
        "config.yaml:19: providers.local.azure_ad_token: only applies to type azure_openai"
        " providers (this one is openai_compatible)",
        "config.yaml:24: providers.openai.send_stream_options: only applies to type"
        " openai_compatible providers (this one is openai)",
    ]


def test_token_file_problems_name_the_key_and_never_the_token(tmp_path, monkeypatch):
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    path = write(
        tmp_path,
        f"""\
          azure:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
            azure_ad_token_file: {tmp_path / "missing"}
          azure2:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
            azure_ad_token_file: {empty}
        """,
    )
    assert lines_of(path, monkeypatch) == [
        "config.yaml:5: providers.azure.azure_ad_token_file: cannot read the token file"
        " (No such file or directory)",
        "config.yaml:9: providers.azure2.azure_ad_token_file: the token file is empty",
    ]


def test_one_credential_from_the_environment_and_an_empty_alternative_is_fine(tmp_path):
    path = write(
        tmp_path,
        """\
          azure:
            type: azure_openai
            base_url: https://contoso.openai.azure.com/
            api_key: ${AZURE_OPENAI_API_KEY:-}
            azure_ad_token: ${AZURE_AD_TOKEN:-}
        """,
    )
    snapshot = load_snapshot(path, {"AZURE_AD_TOKEN": TOKEN})
    provider = snapshot.providers["azure"]
    assert provider.azure_ad_token == TOKEN and provider.api_key == ""
    assert provider.api_version is None and provider.base_url.endswith(".com")
    assert TOKEN not in repr(provider)
    with pytest.raises(ConfigError) as caught:
        load_snapshot(path, {})
    assert "needs api_key or azure_ad_token" in str(caught.value)


def test_a_keyless_compatible_server_loads_without_a_warning(tmp_path):
    path = write(
        tmp_path,
        """\
          azure:
            type: openai_compatible
            base_url: http://127.0.0.1:11434/v1
            api_key: ${LOCAL_LLM_KEY:-}
            send_stream_options: false
        """,
    )
    snapshot = load_snapshot(path, {})
    assert snapshot.warnings == ()
    assert snapshot.providers["azure"].send_stream_options is False


def test_a_changed_token_file_is_a_change_and_an_unchanged_one_is_not(tmp_path):
    token = tmp_path / "secrets" / "token"
    token.parent.mkdir()
    token.write_text(TOKEN + "\n")
    path = write(
        tmp_path,
        f"""\
          azure:
            type: azure_openai
            base_url: https://contoso.openai.azure.com
            api_version: "2024-10-21"
            azure_ad_token_file: {token}
        """,
    )
    snapshot = load_snapshot(path, {})
    assert snapshot.providers["azure"].azure_ad_token == TOKEN
    files, digest = secret_files(snapshot), snapshot_files_digest(snapshot)
    assert files == (token,)
    same = load_if_changed(path, snapshot.version, files, digest)
    assert not same.changed
    token.write_text("rotated-token")
    rotated = load_if_changed(path, snapshot.version, files, digest)
    assert rotated.changed and rotated.snapshot is not None
    assert rotated.snapshot.providers["azure"].azure_ad_token == "rotated-token"
    assert rotated.snapshot.version == snapshot.version  # the config itself did not change
    assert rotated.files_digest == snapshot_files_digest(rotated.snapshot) != digest


def test_the_commented_examples_in_config_yaml_load_once_uncommented(tmp_path, monkeypatch):
    """config.yaml shows an Azure deployment and a local model as comments: they must work."""
    shipped = (Path(__file__).resolve().parents[2] / "config.yaml").read_text().splitlines()
    out, in_example = [], False
    for line in shipped:
        if line.startswith("  # ") and line.rstrip().endswith(":") and " " not in line[4:].strip():
            in_example = True  # "  # azure:" opens an example block
        elif not line.startswith("  #   ") or line.startswith("  #   # "):
            in_example = in_example and line.startswith("  #   # ")
        out.append("  " + line[4:] if in_example and not line.startswith("  #   # ") else line)
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(out) + "\n")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    snapshot = load_snapshot(path)
    assert snapshot.providers["azure"].type == "azure_openai"
    assert snapshot.providers["local"].type == "openai_compatible"
    assert snapshot.models["gpt-4o-azure"].fallbacks == ("gpt-4o",)
    assert snapshot.models["llama-local"].upstream_model == "llama3.1:8b"
