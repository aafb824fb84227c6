"""The OpenAI Responses API (``POST /v1/responses``) as a client dialect, a spoke of the hub.

Vendors that speak it natively (OpenAI: ``natives`` in :mod:`proxy.providers.openai`) get
requests passed through; for every other vendor the pure translators here go through the
unified format: :mod:`.request` (request -> unified, refusing stateful features),
:mod:`.response` (unified answer -> ``response`` object) and :mod:`.stream` (unified chunks ->
Responses events).
"""

from __future__ import annotations

from typing import Any

from proxy.providers.base import StreamFraming, StreamTranslator
from proxy.providers.responses.framing import ResponsesStreamFraming
from proxy.providers.responses.request import responses_to_unified, validate_responses_request
from proxy.providers.responses.response import (
    NAME,
    RESPONSES_COUNTS,
    unified_to_responses,
    usage_from_responses,
)
from proxy.providers.responses.stream import UnifiedToResponsesStream

JSON = dict[str, Any]


class ResponsesDialect:
    """``/v1/responses``: OpenAI-SDK clients of the Responses API, whatever vendor answers."""

    name = NAME

    def validate(self, body: Any) -> None:
        validate_responses_request(body)

    def request_to_unified(self, body: JSON) -> JSON:
        return responses_to_unified(body)

    def response_from_unified(self, response: JSON) -> JSON:
        return unified_to_responses(response)

    def stream_from_unified(self, model: str) -> StreamTranslator | None:
        return UnifiedToResponsesStream(model)

    def stream_framing(self) -> StreamFraming:
        return ResponsesStreamFraming()


DIALECT = ResponsesDialect()
__all__ = [
    "DIALECT",
    "NAME",
    "RESPONSES_COUNTS",
    "ResponsesDialect",
    "usage_from_responses",
]
