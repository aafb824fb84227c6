"""Config for the gemini and vertex_ai provider types: keys, defaults, problems, warnings."""

from __future__ import annotations

from pathlib import Path

from proxy.config.build import check, load_snapshot
from proxy.engine.route import resolve
from proxy.providers.gemini import GEMINI, VERTEX
from tests.unit.test_config import problems_of, write

PRICE = "price: {input_per_1k: 0.0003, output_per_1k: 0.0025}"


def test_vertex_defaults_its_host_from_the_location(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text("{}")
    path = write(
        tmp_path,
        f"""\
        providers:
          eu: {{type: vertex_ai, project: p1, location: europe-west4, credentials_file: {key}}}
          world: {{type: vertex_ai, project: p1, location: global, credentials_file: {key}}}
          studio: {{type: gemini, base_url: https://generativelanguage.googleapis.com, api_key: k}}
        models:
          a: {{provider: eu, upstream_model: gemini-2.5-flash, {PRICE}}}
          b: {{provider: world, {PRICE}}}
          gemini-2.5-flash: {{provider: studio, {PRICE}}}
        """,
    )
    snapshot = load_snapshot(path, {})
    eu, world = snapshot.providers["eu"], snapshot.providers["world"]
    assert eu.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert world.base_url == "https://aiplatform.googleapis.com"
    assert (eu.project, eu.location, eu.credentials_file) == ("p1", "europe-west4", str(key))
    target = resolve(snapshot, "a")
    assert target.vendor is VERTEX
    request = VERTEX.chat_request(eu, b"{}", stream=True, model="gemini-2.5-flash")
    assert request.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4"
        "/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.auth is not None and "authorization" not in request.headers
    studio = GEMINI.chat_request(
        snapshot.providers["studio"], b"{}", False, model="gemini-2.5-flash"
    )
    assert studio.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert studio.headers["x-goog-api-key"] == "k" and "key=" not in studio.url
    assert studio.auth is None  # static keys cost nothing per request


def test_vertex_needs_its_keys_and_others_refuse_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        providers:
          v: {{type: vertex_ai, location: us-central1}}
          o: {{type: openai, base_url: https://api.openai.com/v1, api_key: k, project: p}}
        models:
          m: {{provider: v, {PRICE}}}
        """,
    )
    found = {(p.path, p.message) for p in problems_of(path)}
    assert ("providers.v", "a vertex_ai provider needs 'project'") in found
    assert ("providers.v", "a vertex_ai provider needs 'credentials_file'") in found
    assert ("providers.o.project", "only applies to type vertex_ai providers") in found


def test_a_missing_key_file_is_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        providers:
          v: {{type: vertex_ai, project: p, location: us-central1, credentials_file: /nope.json}}
        models:
          m: {{provider: v, {PRICE}}}
        """,
    )
    problems, warnings = check(path)
    assert problems == []
    assert len(warnings) == 1 and "providers.v.credentials_file" in str(warnings[0])
