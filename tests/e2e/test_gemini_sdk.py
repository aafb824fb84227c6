"""Google's own ``google-genai`` SDK accepts the fake's answers, streams and errors: the fake
Gemini and the fake Vertex AI (token endpoint included) are faithful enough that the gateway's
tests against them mean something.

The fake's schema check is off here: the SDK mixes snake_case names into its camelCase bodies
(``parameters_json_schema``), which the live API accepts and the strict schema refuses on
purpose, since the gateway must send camelCase (MAPPING §7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

from tests.conftest import GEMINI_KEY
from tests.gcp import write_key_file

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city.",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


@pytest.fixture(autouse=True)
def lenient(sim):
    sim.sim.configure(validate=False)


def ai_studio(url: str, key: str = GEMINI_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=url, api_version="v1beta")  # the path the gateway calls
    return genai.Client(api_key=key, http_options=options)


def test_text_and_usage(sim):
    client = ai_studio(sim.url)  # held: a client closes its connections when collected
    response = client.models.generate_content(
        model="gemini-2.5-pro", contents="say: hello from the sdk"
    )
    assert response.text == "hello from the sdk"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.thoughts_token_count == 12
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    assert response.model_version == "gemini-2.5-pro" and response.response_id


def test_stream(sim):
    client = ai_studio(sim.url)
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="say: one two three four five six seven"
        )
    )
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == "one two three four five six seven"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count > 0


def test_function_calls_with_a_thought_signature(sim):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    client = ai_studio(sim.url)
    response = client.models.generate_content(
        model="gemini-3-pro-preview", contents="Weather in Paris?", config=config
    )
    (call,) = response.function_calls
    assert call.name == "get_weather" and set(call.args) == {"city"}
    part = response.candidates[0].content.parts[0]
    assert part.thought_signature  # bytes, decoded by the SDK from the fake's base64


def test_errors(sim):
    wrong, right = ai_studio(sim.url, key="wrong"), ai_studio(sim.url)
    with pytest.raises(errors.ClientError) as caught:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    with pytest.raises(errors.ClientError) as caught:
        right.models.generate_content(model="gemini-0-nope", contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_vertex_through_the_token_endpoint(sim, tmp_path: Path):
    account = write_key_file(tmp_path / "sa.json", f"{sim.url}/token")
    sim.sim.configure(vertex_accounts=(account.account,))
    credentials = service_account.Credentials.from_service_account_file(
        str(account.path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    client = genai.Client(
        vertexai=True,
        project="sim-project",
        location="us-central1",
        credentials=credentials,
        http_options=types.HttpOptions(base_url=sim.url, api_version="v1"),
    )
    response = client.models.generate_content(model="gemini-2.5-flash", contents="say: on vertex")
    assert response.text == "on vertex"
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="say: a b c")
    )
    assert "".join(c.text or "" for c in chunks) == "a b c"
    assert sim.sim.tokens.fetches == 1
