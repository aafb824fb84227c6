"""The fake Azure OpenAI: OpenAI's Chat Completions at Azure's URLs, auth and annotations.

Shapes follow the vendor kit (``samples/azure/``, MAPPING.md §8): the classic deployment URL
(``/openai/deployments/{deployment}/chat/completions?api-version=``; no api-version is a bare
404 "Resource not found") and the v1 URL (``/openai/v1/chat/completions``, ``model`` = the
deployment); ``api-key`` or ``Authorization: Bearer`` (an Entra ID token, or on v1 the key);
``model`` in answers is the deployment's underlying model version; ``prompt_filter_results`` at
the top level and in a first stream chunk with empty ``choices``, ``content_filter_results`` per
choice. A prompt containing :data:`FILTER_PROMPT` is refused (the kit's 400 ``content_filter``),
one containing :data:`FILTER_COMPLETION` ends with ``finish_reason: content_filter``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from proxy.sim import openai
from proxy.sim.faults import Reply, error_reply
from proxy.sse import encode_data

NAME = "azure"
STREAM_ERROR_STATUS = 500
INVALID_JSON = openai.INVALID_JSON
FILTER_PROMPT = "sim-filter-prompt"
FILTER_COMPLETION = "sim-filter-completion"
DEFAULT_MODEL = "gpt-4o-2024-11-20"
DEPLOYMENTS: dict[str, str] = {"gpt-4o-prod": DEFAULT_MODEL, "gpt-4o-mini-eu": "gpt-4o-mini"}
"""Deployment -> model; any ``sim-*`` deployment, or one named after a model, also exists."""
FIRST_VERSION = "2023-05-15"
_API_VERSION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$")
_SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": _SAFE,
            "self_harm": _SAFE,
            "sexual": _SAFE,
            "violence": _SAFE,
            "jailbreak": {"filtered": False, "detected": False},
        },
    }
]
COMPLETION_FILTER = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
FILTERED = {**COMPLETION_FILTER, "violence": {"filtered": True, "severity": "medium"}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> Reply:
    return openai.bad_request(message, param, code)


def authorize(
    headers: Mapping[str, str], key: str | None, token: str | None = None
) -> Reply | None:
    """``api-key: KEY``, or ``Authorization: Bearer`` with the Entra ID token (or, as the v1
    API allows, the key); 401 in Azure's shape otherwise."""
    if key is None and token is None:
        return None
    bearer = headers.get("authorization", "")
    accepted = {f"Bearer {t}" for t in (key, token) if t}
    if (key and headers.get("api-key") == key) or bearer in accepted:
        return None
    return _error(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    )


def _error(status: int, code: str, message: str) -> Reply:
    return error_reply(NAME, status, body={"error": {"code": code, "message": message}})


def resource_not_found() -> Reply:
    return _error(404, "404", "Resource not found")


def underlying_model(deployment: str, extra: frozenset[str]) -> str | None:
    """The model a deployment serves, or None: no such deployment."""
    if deployment in DEPLOYMENTS:
        return DEPLOYMENTS[deployment]
    if deployment.startswith(openai.SIM_PREFIX):
        return DEFAULT_MODEL
    if openai.known_model(deployment, extra):
        return deployment
    return None


def deployment_of(request: web.Request, data: Any) -> tuple[str | None, Reply | None]:
    """The deployment a request names (path or body), or the error Azure gives instead."""
    if request.path.startswith("/openai/deployments/"):
        version = request.query.get("api-version", "")
        if not known_version(version):
            return None, resource_not_found()  # what Azure says to a missing/unknown version
        return request.match_info.get("deployment", ""), None
    if "api-version" in request.query and request.query["api-version"] not in ("preview",):
        return None, bad_request("api-version is not supported on the v1 API.", "api-version")
    model = data.get("model") if isinstance(data, dict) else None
    return (model if isinstance(model, str) else None), None


def known_version(version: str) -> bool:
    """Well formed and not older than the first GA version (2023-05-15)."""
    return bool(_API_VERSION.match(version)) and version[:10] >= FIRST_VERSION


def models_reply(extra_models: frozenset[str]) -> Reply:
    return openai.models_reply(extra_models)


def prepare(request: web.Request, data: Any, extra: frozenset[str]) -> tuple[Any, Reply | None]:
    """Route checks before the schema: the body to validate (with ``model`` = the deployment,
    which the classic URL does not need in the body), or Azure's own error."""
    if request.method == "GET":  # the models list: only the classic one needs a version
        classic = request.path == "/openai/models"
        valid = known_version(request.query.get("api-version", ""))
        return data, resource_not_found() if classic and not valid else None
    deployment, refused = deployment_of(request, data)
    if refused is not None:
        return data, refused
    if not isinstance(data, dict):
        return data, None
    if not deployment or underlying_model(deployment, extra) is None:
        return data, _error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the "
            "deployment within the last 5 minutes, please wait a moment and try again.",
        )
    return {**data, "model": deployment}, None


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """After :func:`prepare`, auth and schema validation: OpenAI's answer, Azure-annotated."""
    texts = orjson.dumps(body.get("messages")).decode()
    if FILTER_PROMPT in texts:
        return error_reply(NAME, 400, sample="400-content_filter")
    model = underlying_model(str(body["model"]), extra_models) or DEFAULT_MODEL
    reply = openai.answer(
        {**body, "model": model}, n_chunks=n_chunks, extra_models=extra_models | {model}
    )
    if reply.status != 200:
        return reply
    filtered = FILTER_COMPLETION in texts
    if reply.events is None:
        data = _annotate(orjson.loads(reply.body), model, filtered)
        return Reply(200, _headers(reply.headers), orjson.dumps(data))
    events = [_annotate_event(event, model, filtered) for event in reply.events]
    opener = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
    opener["prompt_filter_results"] = PROMPT_FILTER
    headers = _headers(reply.headers)
    return Reply(200, headers, events=[encode_data(opener), *events], error_event=reply.error_event)


def _headers(base: Mapping[str, str]) -> dict[str, str]:
    """Azure's headers, not OpenAI's (no openai-version; an apim request id)."""
    out = {k: v for k, v in base.items() if not k.startswith("openai-")}
    out["apim-request-id"] = out.pop("x-request-id", "")
    return out


azure_headers = _headers  # shared with its Responses API (proxy.sim.azure_responses)


def _annotate(data: dict[str, Any], model: str, filtered: bool) -> dict[str, Any]:
    data["model"] = model
    data["prompt_filter_results"] = PROMPT_FILTER
    data.pop("service_tier", None)
    for choice in data.get("choices") or ():
        choice["content_filter_results"] = FILTERED if filtered else COMPLETION_FILTER
        if filtered:
            choice["finish_reason"] = "content_filter"
    return data


def _annotate_event(event: bytes, model: str, filtered: bool) -> bytes:
    if not event.startswith(b"data: {"):
        return event  # [DONE]
    data = orjson.loads(event[len(b"data: ") :])
    data["model"] = model
    data.pop("service_tier", None)
    data.pop("obfuscation", None)
    for choice in data.get("choices") or ():
        choice["content_filter_results"] = {} if choice.get("finish_reason") else COMPLETION_FILTER
        if filtered and choice.get("finish_reason"):
            choice["finish_reason"] = "content_filter"
    return encode_data(data)
