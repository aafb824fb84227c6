"""Cohere's named SSE events as unified ``chat.completion.chunk`` payloads (MAPPING §9).

Incremental: each event is answered at once with what it allows. ``tool-plan-delta`` text goes
out as content (before the tool calls, as in non-streaming responses); ``thinking`` content is
dropped; a citation goes out as a ``citations`` extension on a delta (OpenAI clients only: the
Anthropic dialect has no place for it). ``message-end`` carries the finish reason and usage
(billed units, maybe as floats): a finish chunk, then a usage chunk (``choices: []``). A
``message-end`` with ``delta.error`` or an ``ERROR``/``TIMEOUT`` finish is an error chunk.
``done`` turns true at ``message-end``; Cohere's trailing ``data: [DONE]`` is then ignored.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import GatewayError
from proxy.providers.cohere.response import finish_reason, openai_usage

JSON = dict[str, Any]
Out = list[tuple[str | None, JSON]]


class CohereToUnifiedStream:
    """Cohere events in (by SSE event name or payload ``type``), unified chunks out."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = ""
        self._thinking: set[int] = set()  # content indices holding thinking, not text
        self._tools: dict[int, int] = {}  # Cohere tool-call index -> OpenAI tool-call index
        # Plan text went out: the next text is set apart by a blank line, as non-streaming.
        self._after_plan = False
        self.done = False

    def feed(self, name: str | None, payload: JSON) -> Out:
        if self.done:
            return []
        kind = payload.get("type") or name
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        message = delta.get("message") if isinstance(delta.get("message"), dict) else {}
        if kind == "message-start":
            self._id = str(payload.get("id") or "")
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind in ("content-start", "content-delta"):
            return self._content(payload.get("index", 0), message.get("content") or {})
        if kind == "tool-plan-delta":
            out = self._text(message.get("tool_plan"))
            self._after_plan = self._after_plan or bool(out)
            return out
        if kind in ("tool-call-start", "tool-call-delta"):
            return self._tool(payload.get("index", 0), message.get("tool_calls") or {})
        if kind == "citation-start" and isinstance(message.get("citations"), dict):
            return [self._chunk({"citations": [message["citations"]]})]
        if kind == "message-end":
            return self._end(delta)
        return []  # content-end, tool-call-end, citation-end, debug, and newer event types

    def finish(self) -> Out:
        return []

    def _content(self, index: Any, content: JSON) -> Out:
        if content.get("type") == "thinking":
            self._thinking.add(index)
        if index in self._thinking:
            return []
        text = content.get("text")
        if self._after_plan and isinstance(text, str) and text:
            self._after_plan, text = False, f"\n\n{text}"
        return self._text(text)

    def _text(self, text: Any) -> Out:
        return [self._chunk({"content": text})] if isinstance(text, str) and text else []

    def _tool(self, index: Any, call: JSON) -> Out:
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        if index not in self._tools:
            self._tools[index] = len(self._tools)
            opener = {
                "index": self._tools[index],
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": str(fn.get("name") or ""), "arguments": ""},
            }
            out = [self._chunk({"tool_calls": [opener]})]
        else:
            out = []
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            piece = {"index": self._tools[index], "function": {"arguments": arguments}}
            out.append(self._chunk({"tool_calls": [piece]}))
        return out

    def _end(self, delta: JSON) -> Out:
        self.done = True
        try:
            reason = finish_reason(delta.get("finish_reason"), delta.get("error"))
        except GatewayError as error:
            return [(None, error.openai_body())]
        if self._tools and reason == "stop":
            reason = "tool_calls"
        usage = {**self._base(), "choices": [], "usage": openai_usage(delta.get("usage"))}
        return [self._chunk({}, reason), (None, usage)]

    def _base(self) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": "",
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> tuple[None, JSON]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return None, {**self._base(), "choices": [choice], "usage": None}
