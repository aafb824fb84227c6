"""Gemini ``streamGenerateContent?alt=sse`` events as unified chunks (MAPPING §7).

Each Gemini event holds only the new parts, so every text part becomes one content delta as
is (nothing is diffed, so nothing is duplicated or lost) and each ``functionCall`` one whole
tool call. There is no terminal event: the stream is complete once every candidate seen has a
``finishReason`` (``complete_at_eof``); the usage chunk (``choices: []``) is sent at the end of
the stream from the last ``usageMetadata``, which is the full one.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import GatewayError
from proxy.providers.gemini.errors import stream_error
from proxy.providers.gemini.response import (
    check_blocked,
    finish_reason,
    split_parts,
    unified_usage,
)

JSON = dict[str, Any]
Out = list[tuple[str | None, JSON]]


class GeminiToUnifiedStream:
    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._model = ""
        self._usage: Any = None
        self._calls: dict[int, int] = {}  # candidate index -> tool calls sent so far
        self._open: set[int] = set()  # candidates without a finishReason yet
        self._finished: set[int] = set()
        self._started = False
        self.done = False
        self.complete_at_eof = False

    def feed(self, name: str | None, payload: JSON) -> Out:
        if self.done:
            return []
        if "error" in payload:
            self.done = True
            return [(None, stream_error(payload["error"]).openai_body())]
        if not self._started:
            self._id = str(payload.get("responseId") or "gemini")
            self._model = str(payload.get("modelVersion") or "")
        if payload.get("usageMetadata"):
            self._usage = payload["usageMetadata"]
        try:
            check_blocked(payload)
        except GatewayError as blocked:
            if not self._started:
                raise  # nothing sent yet: an ordinary HTTP 400
            self.done = True
            return [(None, blocked.openai_body())]
        out: Out = []
        for position, candidate in enumerate(payload.get("candidates") or []):
            if isinstance(candidate, dict):
                out += self._candidate(candidate.get("index", position), candidate)
        self.complete_at_eof = bool(self._finished) and not self._open
        return out

    def _candidate(self, index: int, candidate: JSON) -> Out:
        content = candidate.get("content") or {}
        sent = self._calls.get(index, 0)
        text, calls = split_parts(content.get("parts"), f"{self._id}/{index}", sent)
        delta: JSON = {}
        if not self._started or index not in self._calls:
            delta["role"] = "assistant"
        self._calls[index] = sent + len(calls)
        if text or not calls:
            delta["content"] = text
        if calls:
            delta["tool_calls"] = [{"index": sent + i, **call} for i, call in enumerate(calls)]
        out: Out = []
        if text or calls or "role" in delta:
            out.append(self._chunk(index, delta, None))
        self._started = True
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            self._open.discard(index)
            out.append(self._chunk(index, {}, finish_reason(reason, self._calls[index] > 0)))
        elif not reason:
            self._open.add(index)
        return out

    def finish(self) -> Out:
        if self.done or not self._started:
            return []
        self.done = True
        base = self._base()
        return [(None, {**base, "choices": [], "usage": unified_usage(self._usage)})]

    def _base(self) -> JSON:
        return {
            "id": f"chatcmpl-{self._id}",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, index: int, delta: JSON, finish: str | None) -> tuple[None, JSON]:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        return None, {**self._base(), "choices": [choice], "usage": None}
