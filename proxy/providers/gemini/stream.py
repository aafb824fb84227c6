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
        self._response_id = ""  # as Gemini sent it ("" if not), what synthesized ids hash
        self._base: JSON = {}
        self._usage: Any = None
        self._calls: dict[int, int] = {}  # candidate index -> tool calls sent so far
        self._stems: dict[int, str] = {}  # candidate index -> stem of its synthesized ids
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
            self._start(payload)
        usage = payload.get("usageMetadata")
        if usage:
            self._usage = usage
        candidates = payload.get("candidates")
        if not candidates:
            return self._no_candidates(payload)
        if len(candidates) == 1:  # the common event
            return self._candidate(candidates[0].get("index", 0), candidates[0])
        out: Out = []
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                out += self._candidate(candidate.get("index", position), candidate)
        return out

    def _start(self, payload: JSON) -> None:
        self._response_id = str(payload.get("responseId") or "")
        self._id = self._response_id or "gemini"
        self._base = {
            "id": f"chatcmpl-{self._id}",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": str(payload.get("modelVersion") or ""),
        }

    def _no_candidates(self, payload: JSON) -> Out:
        """A usage-only event, or a blocked prompt: before any output an ordinary HTTP 400
        (raised), after it an error event."""
        try:
            check_blocked(payload)
        except GatewayError as blocked:
            if not self._started:
                raise
            self.done = True
            return [(None, blocked.openai_body())]
        return []

    def _candidate(self, index: int, candidate: JSON) -> Out:
        parts = (candidate.get("content") or {}).get("parts")
        if index in self._calls and "finishReason" not in candidate and parts and len(parts) == 1:
            part = parts[0]  # the common event: more text of a candidate already started
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str) and not part.get("thought"):
                if not text:
                    return []
                choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
                return [(None, {**self._base, "choices": [choice], "usage": None})]
        sent = self._calls.get(index)
        first = sent is None
        sent = sent or 0
        part = parts[0] if parts and len(parts) == 1 else None
        if part is not None and "text" in part and not part.get("thought"):  # the common event
            text, calls = part["text"], []
        else:
            seed = (self._response_id, index)
            text, calls, stem = split_parts(parts, seed, sent, self._stems.get(index, ""))
            self._calls[index] = sent + len(calls)
            self._stems[index] = stem
        if first:
            self._calls.setdefault(index, 0)
        out: Out = []
        if text or calls or first:
            delta: JSON = {"role": "assistant"} if first else {}
            if text or not calls:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [{"index": sent + i, **call} for i, call in enumerate(calls)]
            out.append(self._chunk(index, delta, None))
        self._started = True
        reason = candidate.get("finishReason")
        if reason is None:
            if first:
                self._open.add(index)
                self.complete_at_eof = False
        elif index not in self._finished:
            self._finished.add(index)
            self._open.discard(index)
            self.complete_at_eof = not self._open
            out.append(self._chunk(index, {}, finish_reason(reason, self._calls[index] > 0)))
        return out

    def finish(self) -> Out:
        if self.done or not self._started:
            return []
        self.done = True
        return [(None, {**self._base, "choices": [], "usage": unified_usage(self._usage)})]

    def _chunk(self, index: int, delta: JSON, finish: str | None) -> tuple[None, JSON]:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        return None, {**self._base, "choices": [choice], "usage": None}
