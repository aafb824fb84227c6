import orjson
import pytest

from proxy.errors import ErrorType, GatewayError
from proxy.providers.openai import error_from_openai, validate_chat_request
from tests.kit import SAMPLES, sample

EXPECTED = {
    "400": (ErrorType.INVALID_REQUEST, False),
    "401": (ErrorType.INVALID_API_KEY, False),
    "404": (ErrorType.MODEL_NOT_FOUND, False),
    "429": (ErrorType.RATE_LIMIT_EXCEEDED, True),
    "429-insufficient_quota": (ErrorType.RATE_LIMIT_EXCEEDED, False),
    "500": (ErrorType.PROVIDER_ERROR, True),
    "503": (ErrorType.PROVIDER_ERROR, True),
}


@pytest.mark.parametrize("stem", sorted(p.stem for p in (SAMPLES / "openai/errors").glob("*.json")))
def test_every_sample_error_maps_to_the_taxonomy(stem):
    case = sample(f"openai/errors/{stem}.json")
    error = error_from_openai(case["status"], orjson.dumps(case["body"]), case["headers"])
    kind, retryable = EXPECTED[stem]
    assert error.type is kind and error.retryable is retryable
    assert error.message == case["body"]["error"]["message"]
    if case["status"] == 429:
        assert error.retry_after == case["headers"].get("retry-after")


def test_garbage_error_body_still_maps():
    error = error_from_openai(502, b"<html>bad gateway</html>", {})
    assert error.type is ErrorType.PROVIDER_ERROR and error.retryable
    assert "502" in error.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": [1]}]}, "messages[0].content[0]"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            "temperature",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1.5}, "n"),
    ],
)
def test_malformed_requests_name_the_field(body, param):
    with pytest.raises(GatewayError) as caught:
        validate_chat_request(body)
    assert caught.value.type is ErrorType.INVALID_REQUEST
    assert caught.value.param == param


def test_kit_requests_pass_the_cheap_check():
    for name in ("chat.request.json", "chat.request.tool_results.json", "chat.request.stream.json"):
        validate_chat_request(sample(f"openai/{name}"))
