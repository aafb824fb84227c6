"""The fake Azure OpenAI's Responses API: ``POST /openai/v1/responses`` (the v1 API, where
Azure serves it), ``model`` = the deployment. Azure's URL checks, auth and errors
(:mod:`proxy.sim.azure`); the answer is the fake OpenAI's (:mod:`proxy.sim.openai_responses`)
for the deployment's underlying model, with Azure's headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.sim import azure, openai_responses
from proxy.sim.faults import Reply

NAME = azure.NAME  # errors, keys and URL checks are the fake Azure's
SCHEMA = openai_responses.SCHEMA
STREAM_ERROR_STATUS = azure.STREAM_ERROR_STATUS
INVALID_JSON = azure.INVALID_JSON
authorize, bad_request, models_reply = azure.authorize, azure.bad_request, azure.models_reply


def answer(body: Mapping[str, Any], *, n_chunks: int, extra_models: frozenset[str]) -> Reply:
    """After Azure's route checks, auth and schema validation."""
    model = azure.underlying_model(str(body["model"]), extra_models) or azure.DEFAULT_MODEL
    reply = openai_responses.answer(
        {**body, "model": model}, n_chunks=n_chunks, extra_models=extra_models | {model}
    )
    return Reply(
        reply.status,
        azure.azure_headers(reply.headers),
        reply.body,
        events=reply.events,
        error_event=reply.error_event,
    )
